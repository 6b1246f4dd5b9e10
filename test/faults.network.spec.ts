/**
 * Network and server faults, against real redis-server processes (test/support/redis-server.ts)
 * and, for what a server cannot simulate, an in-process TCP proxy (test/support/tcp-proxy.ts):
 * Redis stopped and restarted under a running app, a network slower than the lease, connections
 * cut or hung in the middle of a call, and AUTH.
 *
 * Time bounds here are behaviour bounds (a call settles by its deadline plus a generous margin,
 * a lost lease is reported by its proven expiry plus a margin), never speed claims.
 */
import { createHash } from 'node:crypto';
import type { Redis } from 'ioredis';
import { Lock, LockLostError, LockNotAcquiredError, LockUnavailableError, type LockModuleOptions } from '../lib/index.js';
import { aborted, eventually, startLockApp, type LockApp } from './support/lock-app.js';
import { RedisServer, stopAllRedisServers } from './support/redis-server.js';
import { TcpProxy } from './support/tcp-proxy.js';
import { watchProcessFailures } from './support/process-failures.js';
import { ownerOf } from './support/lock-value.js';
import { ACQUIRE_SCRIPT, QUEUED_ACQUIRE_SCRIPT, RELEASE_ONE_SCRIPT } from '../lib/stores/redis-scripts.js';

/** The library's shortest bound on one Redis call, even for `wait: 0` (README, "Deadlines"). */
const MIN_CALL_MS = 1_000;
/** Slack on a call's deadline for a slow, loaded machine. */
const DEADLINE_MARGIN_MS = 3_000;
/** Slack on a lost lease's proven expiry before its signal must have aborted (timer and event-loop lag). */
const ABORT_MARGIN_MS = 500;
const HOST = '127.0.0.1';

const delay = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));


/** Lets any rejection left without a handler surface (Node reports them after the microtask queue drains). */
async function settleRejections(): Promise<void> {
  for (let i = 0; i < 5; i++) {
    await new Promise((resolve) => setImmediate(resolve));
    await delay(20);
  }
}

/** How a call ended, and how long after it was made (wall time, for deadline bounds). */
interface Outcome<T> {
  value?: T;
  error?: unknown;
  elapsedMs: number;
}

/** Starts `call` now and records its outcome without ever leaving a rejection unhandled. */
function track<T>(call: () => Promise<T>): Promise<Outcome<T>> {
  const started = Date.now();
  let promise: Promise<T>;
  try {
    promise = call();
  } catch (error) {
    promise = Promise.reject(error);
  }
  return promise.then(
    (value) => ({ value, elapsedMs: Date.now() - started }),
    (error: unknown) => ({ error, elapsedMs: Date.now() - started }),
  );
}

/** "LockUnavailableError", "Lock", "null", ... for readable assertions. */
function kindOf(outcome: Outcome<unknown>): string {
  if ('error' in outcome && outcome.error !== undefined) {
    const error = outcome.error as Error;
    return error?.constructor?.name ?? String(error);
  }
  if (outcome.value === null) return 'null';
  if (outcome.value instanceof Lock) return 'Lock';
  return typeof outcome.value;
}

/** Subscribers of the library's release channel (default prefix), as Redis counts them. */
async function releaseSubscribers(redis: Redis): Promise<number> {
  const reply = (await redis.call('PUBSUB', 'NUMSUB', 'lock:released')) as [string, number];
  return Number(reply[1]);
}

async function closeClient(redis: Redis | undefined): Promise<void> {
  if (!redis) return;
  if (redis.status === 'ready') await redis.quit().catch(() => redis.disconnect());
  else redis.disconnect();
}

/** One app reaching a fresh redis-server through a TcpProxy, a direct client to check Redis, and a watch on process failures. */
interface AppBehindProxy {
  failures: ReturnType<typeof watchProcessFailures>;
  server: RedisServer;
  proxy: TcpProxy;
  redis: Redis;
  app: LockApp;
  /** Stops watching, then closes `first` (other apps, while their server is still up), the app, the proxy, the client and the server. */
  close(...first: LockApp[]): Promise<void>;
}

async function startAppBehindProxy(options: Omit<LockModuleOptions, 'redis'>): Promise<AppBehindProxy> {
  const failures = watchProcessFailures();
  let server: RedisServer | undefined;
  let proxy: TcpProxy | undefined;
  let redis: Redis | undefined;
  let app: LockApp | undefined;
  const close = async (...first: LockApp[]): Promise<void> => {
    failures.stop();
    for (const other of first) await other.close();
    await app?.close();
    await proxy?.close();
    await closeClient(redis);
    await server?.stop();
  };
  try {
    server = await RedisServer.start();
    proxy = await TcpProxy.start(server.port);
    redis = server.client();
    app = await startLockApp({ redis: { host: HOST, port: proxy.port }, ...options });
  } catch (error) {
    // The caller gets nothing to close: whatever did start would outlive the test.
    await close();
    throw error;
  }
  return { failures, server, proxy, redis, app, close };
}

/** Observed wall times, printed at the end with FAULT_TIMINGS=1 (for the notes, not asserted). */
const timings: Record<string, number> = {};

describe('network faults', () => {
  afterAll(async () => {
    if (process.env.FAULT_TIMINGS) console.log(`observed wall times (ms): ${JSON.stringify(timings, null, 2)}`);
    await stopAllRedisServers();
  });

  it('Redis stopped: holders are told, waiters and new callers fail with LockUnavailableError by their deadline; after a restart the same app acquires and waits again', async () => {
    const failures = watchProcessFailures();
    const server = await RedisServer.start();
    const redis = server.client();
    // A poll far longer than any wait here: after the restart, only a release notification (the
    // subscriber must have reconnected) can wake the waiter in time.
    const app = await startLockApp({ redis: server.url, pollInterval: 60_000 });
    try {
      const ttl = 1_500;
      const holders = [await app.locks.acquire('down:held', { ttl }), await app.locks.acquire(['down:m1', 'down:m2'], { ttl })];
      const atAbort = new Map<Lock, { at: number; expiresAt: number }>();
      for (const lock of holders) {
        lock.signal.addEventListener('abort', () => atAbort.set(lock, { at: Date.now(), expiresAt: lock.expiresAt }), { once: true });
      }

      // A caller waiting for a busy key, with the release subscriber open. The key is one of the
      // multi-key hold's: for a key the app holds alone, the caller would wait in the app for the
      // app's own release (local succession), asking Redis nothing and opening no subscriber.
      const waitMs = 2_000;
      const waiterStart = Date.now();
      const waiter = track(() => app.locks.acquire('down:m1', { wait: waitMs }));
      await eventually(() => app.locks.leaseStats.waiters === 1, 10_000, 'the waiter to queue');
      await eventually(async () => (await releaseSubscribers(redis)) >= 1, 10_000, 'the release subscriber');

      await server.stop();
      const goneAt = Date.now();

      // New callers, while Redis is down.
      const [acquired, tried, checked] = await Promise.all([
        track(() => app.locks.acquire('down:other', { wait: 1_000 })),
        track(() => app.locks.tryAcquire('down:try')),
        track(() => app.locks.isLocked('down:held')),
      ]);
      const waited = await waiter;
      const waiterElapsed = waited.elapsedMs;

      // The waiter's last attempt is made at its deadline (it sleeps until then, then looks once
      // more). If Redis was gone by then, nobody can say the lock "stayed busy for the whole wait":
      // the contract's answer is LockUnavailableError ("Redis could not be reached in time").
      // Only if stopping the server took longer than the whole wait could the key legitimately
      // have been seen busy at the deadline (LockNotAcquiredError).
      const expectedForWaiter = goneAt < waiterStart + waitMs ? ['LockUnavailableError'] : ['LockUnavailableError', 'LockNotAcquiredError'];
      expect({ waiter: kindOf(waited) }).toEqual({ waiter: expect.stringMatching(new RegExp(`^(${expectedForWaiter.join('|')})$`)) });
      expect(waiterElapsed).toBeLessThanOrEqual(waitMs + MIN_CALL_MS + DEADLINE_MARGIN_MS);

      expect({ acquire: kindOf(acquired), tryAcquire: kindOf(tried), isLocked: kindOf(checked) }).toEqual({
        acquire: 'LockUnavailableError',
        tryAcquire: 'LockUnavailableError',
        isLocked: 'LockUnavailableError',
      });
      for (const outcome of [acquired, tried, checked]) expect((outcome.error as Error).cause).toBeDefined();
      expect(acquired.elapsedMs).toBeLessThanOrEqual(1_000 + MIN_CALL_MS + DEADLINE_MARGIN_MS);
      expect(tried.elapsedMs).toBeLessThanOrEqual(0 + MIN_CALL_MS + DEADLINE_MARGIN_MS);
      expect(checked.elapsedMs).toBeLessThanOrEqual(MIN_CALL_MS + DEADLINE_MARGIN_MS);

      // Holders: told through their signal, no later than the lease they could prove.
      for (const lock of holders) {
        const reason = await aborted(lock.signal);
        expect(reason).toBeInstanceOf(LockLostError);
        expect((reason as LockLostError).keys).toEqual(lock.keys);
        const seen = atAbort.get(lock) as { at: number; expiresAt: number };
        // The last confirmed renewal was sent while Redis was still running...
        expect(seen.expiresAt).toBeLessThanOrEqual(goneAt + ttl);
        // ...and the loss was reported by the end of the lease it proved.
        expect(seen.at).toBeLessThanOrEqual(seen.expiresAt + ABORT_MARGIN_MS);
        await expect(lock.extend()).rejects.toBeInstanceOf(LockLostError);
        await expect(lock.release()).resolves.toBeUndefined();
      }
      timings['a: holders told after stop (max)'] = Math.max(...holders.map((lock) => (atAbort.get(lock)?.at ?? NaN) - goneAt));
      timings['a: waiter (wait 2000) settled after'] = waiterElapsed;
      timings['a: acquire (wait 1000) settled after'] = acquired.elapsedMs;
      timings['a: tryAcquire settled after'] = tried.elapsedMs;
      timings['a: isLocked settled after'] = checked.elapsedMs;

      // Same port, empty data (no scripts, no keys); the app is not restarted.
      await server.restart();
      const upAt = Date.now();
      const errorsWhileRecovering: unknown[] = [];
      let first: Lock | undefined;
      await eventually(
        async () => {
          try {
            first = await app.locks.acquire('up:first', { wait: 1_000 });
            return true;
          } catch (error) {
            errorsWhileRecovering.push(error);
            return false;
          }
        },
        30_000,
        'an acquire to succeed after the restart',
      );
      timings['a: first acquire succeeded after restart'] = Date.now() - upAt;
      expect(errorsWhileRecovering.filter((error) => !(error instanceof LockUnavailableError))).toEqual([]);
      const firstLock = first as Lock;
      expect(ownerOf(await redis.get('lock:{up:first}'))).toBe(firstLock.token);
      await firstLock.release();
      expect(await redis.exists('lock:{up:first}')).toBe(0);

      // Renewals work on the new server too (its script cache started empty): two leases renewed
      // together, several times over, without a loss.
      const renewed = await Promise.all([app.locks.acquire('up:r1', { ttl }), app.locks.acquire('up:r2', { ttl })]);
      const firstExpiry = renewed.map((lock) => lock.expiresAt);
      await eventually(
        () => renewed.some((lock) => lock.signal.aborted) || renewed.every((lock, i) => lock.expiresAt > firstExpiry[i] + ttl),
        20_000,
        'the leases to be renewed after the restart',
      );
      expect(renewed.map((lock) => lock.signal.aborted)).toEqual([false, false]);
      for (const lock of renewed) expect(ownerOf(await redis.get(`lock:{${lock.keys[0]}}`))).toBe(lock.token);
      await Promise.all(renewed.map((lock) => lock.release()));

      // Waiting works again: woken by the release itself (the poll is 60 s, the wait 20 s).
      await eventually(async () => (await releaseSubscribers(redis)) >= 1, 30_000, 'the release subscriber to be back');
      timings['a: release subscriber back after restart'] = Date.now() - upAt;
      const holder = await app.locks.acquire('up:wait', { ttl: 60_000 });
      const waiting = track(() => app.locks.acquire('up:wait', { wait: 20_000 }));
      await eventually(() => app.locks.leaseStats.waiters === 1, 10_000, 'the waiter to queue');
      const releasedAt = Date.now();
      await holder.release();
      const woken = await waiting;
      timings['a: waiter got the lock after the release'] = Date.now() - releasedAt;
      expect(kindOf(woken)).toBe('Lock');
      const next = woken.value as Lock;
      expect(next.fence).toBeGreaterThan(holder.fence);
      expect(ownerOf(await redis.get('lock:{up:wait}'))).toBe(next.token);
      await next.release();

      await settleRejections();
    } finally {
      failures.stop();
      await app.close();
      await closeClient(redis);
      await server.stop();
    }
    expect(failures.unhandledRejections).toEqual([]);
    expect(failures.uncaughtExceptions).toEqual([]);
  }, 120_000);

  it('slow network: a renewal whose reply would land after expiresAt aborts the signal by the proven expiry, not when the reply lands', async () => {
    const { failures, proxy, redis, app, close } = await startAppBehindProxy({ wait: 0 });
    try {
      // A round trip of 2 x latency is twice the lease: no renewal sent once the network is slow
      // can be confirmed before the lease it extends runs out.
      const ttl = 1_000;
      const latency = 1_000;
      const key = 'slow:held';
      const lock = await app.locks.acquire(key, { ttl });
      const renewalsAtStart = app.locks.leaseStats.renewalsSent;
      await eventually(() => app.locks.leaseStats.renewalsSent >= renewalsAtStart + 2, 10_000, 'renewals over the proxy');
      expect(lock.signal.aborted).toBe(false);
      let seen: { at: number; expiresAt: number } | undefined;
      lock.signal.addEventListener('abort', () => (seen = { at: Date.now(), expiresAt: lock.expiresAt }), { once: true });

      // In one tick: what the holder could prove, and the network turning slow.
      const expiresBefore = lock.expiresAt;
      const slowFrom = Date.now();
      proxy.setLatency(latency);

      const reason = await aborted(lock.signal);
      expect(reason).toBeInstanceOf(LockLostError);
      const lost = seen as { at: number; expiresAt: number };
      timings['b: signal aborted after latency added'] = lost.at - slowFrom;
      timings['b: ... relative to expiresAt known before'] = lost.at - expiresBefore;
      // Only a renewal sent before the slowdown can have counted (its reply was already on its way)...
      expect(lost.expiresAt).toBeLessThanOrEqual(slowFrom + ttl + 2);
      expect(lost.expiresAt).toBeGreaterThanOrEqual(expiresBefore - 2); // epoch conversion rounds to the ms
      // ...and the holder stopped believing in the lock when that lease ran out, not a round trip later.
      expect(lost.at).toBeLessThanOrEqual(lost.expiresAt + ABORT_MARGIN_MS);

      // The late reply of the renewal that was in flight changes nothing once it lands: still lost,
      // nothing scheduled, extend refuses.
      const repliesAtAbort = proxy.bytesDelivered.toClient;
      await eventually(() => proxy.bytesDelivered.toClient > repliesAtAbort, 10_000, 'the late renewal reply to reach the app');
      await settleRejections(); // let the app read and handle it
      expect(lock.signal.reason).toBe(reason);
      expect(app.locks.leaseStats.scheduled).toBe(0);
      proxy.setLatency(0);
      await expect(lock.extend()).rejects.toBeInstanceOf(LockLostError);
      await expect(lock.release()).resolves.toBeUndefined();
      await eventually(async () => (await redis.exists(`lock:{${key}}`)) === 0, 10_000, 'the lost key to be gone');

      // Once the network is fast again, the same app locks normally.
      const again = await app.locks.acquire(key, { ttl, wait: 5_000 });
      expect(again.fence).toBeGreaterThan(lock.fence);
      expect(ownerOf(await redis.get(`lock:{${key}}`))).toBe(again.token);
      await again.release();
      await settleRejections();
    } finally {
      await close();
    }
    expect(failures.unhandledRejections).toEqual([]);
    expect(failures.uncaughtExceptions).toEqual([]);
  }, 60_000);

  it('a grant refused as late is given back before the next attempt runs, even when Redis lost the release script (NOSCRIPT) but not the acquire script', async () => {
    // The give-back and the retry both carry the caller's token. Were the retry sent while the
    // give-back was still unsettled, the NOSCRIPT fallback (the script re-sent in full) could run
    // the give-back after the retry, deleting the hold the retry was just granted: a "held" lock
    // nobody holds.
    const { failures, server, proxy, redis, app, close } = await startAppBehindProxy({ wait: 0 });
    const other = await startLockApp({ redis: { host: HOST, port: server.port }, wait: 0 });
    try {
      const key = 'noscript:give-back';
      const lockKey = `lock:{${key}}`;
      const ttl = 1_000;
      // Both scripts used once on the app's connection: from now on they are sent by SHA.
      await (await app.locks.acquire(key, { ttl, wait: 5_000 })).release();

      // The first attempt's grant comes back after its lease ran out, so it is refused and given back.
      proxy.setLatency(1_300, 'toClient');
      const attempt = track(() => app.locks.acquire(key, { ttl, wait: 10_000 }));
      await eventually(async () => (await redis.exists(lockKey)) === 1, 5_000, 'the first attempt to run');
      // Redis loses every script (a restart or failover does this), and another client brings back
      // the acquire script only: the give-back (release script) meets NOSCRIPT, the retry does not.
      await redis.script('FLUSH');
      await redis.script('LOAD', QUEUED_ACQUIRE_SCRIPT);
      // Replies are delayed less now, but still past the retry's send: the NOSCRIPT reply of the
      // give-back reaches the app after the retry has been sent.
      proxy.setLatency(400, 'toClient');
      const outcome = await attempt;
      expect(kindOf(outcome)).toBe('Lock');
      const lock = outcome.value as Lock;
      // Held means held in Redis, by this token, and nobody else gets in.
      expect(ownerOf(await redis.get(lockKey))).toBe(lock.token);
      expect(await other.locks.tryAcquire(key)).toBeNull();
      proxy.setLatency(0);
      await lock.release();
      await settleRejections();
    } finally {
      proxy.setLatency(0);
      await close(other);
    }
    expect(failures.unhandledRejections).toEqual([]);
    expect(failures.uncaughtExceptions).toEqual([]);
  }, 60_000);

  it('an attempt given up on while Redis answers it NOSCRIPT is given back after it runs, leaving no hold behind', async () => {
    // The attempt outlives the caller's deadline. Its give-back is sent at once; were that the only
    // one, the attempt's NOSCRIPT fallback (the script re-sent in full, after the give-back) would
    // take the lock for a caller that already failed, and keep it for the whole ttl.
    const { failures, server, proxy, redis, app, close } = await startAppBehindProxy({ wait: 0 });
    const sha = (lua: string) => createHash('sha1').update(lua).digest('hex');
    try {
      const key = 'noscript:given-up';
      const lockKey = `lock:{${key}}`;
      // Both scripts used once on the app's connection: from now on they are sent by SHA.
      await (await app.locks.acquire(key)).release();
      // Redis loses its scripts, and another client brings back the release script only.
      await redis.script('FLUSH');
      await redis.script('LOAD', RELEASE_ONE_SCRIPT);
      // Replies come back after the attempt's bound (1 s with wait 0): the caller gives up first.
      proxy.setLatency(1_500, 'toClient');
      await expect(app.locks.tryAcquire(key, { ttl: 30_000 })).rejects.toBeInstanceOf(LockUnavailableError);
      proxy.setLatency(0);
      await eventually(async () => ((await redis.script('EXISTS', sha(ACQUIRE_SCRIPT))) as number[])[0] === 1, 15_000, 'the attempt to run');
      await eventually(async () => (await redis.exists(lockKey)) === 0, 10_000, 'the hold the attempt took to be given back');
      // Nothing comes back later either: the key stays free for others.
      await new Promise((resolve) => setTimeout(resolve, 2_000));
      expect(await redis.exists(lockKey)).toBe(0);
      const again = await app.locks.tryAcquire(key);
      expect(again).not.toBeNull();
      await again?.release();
      await settleRejections();
    } finally {
      proxy.setLatency(0);
      await close();
    }
    expect(failures.unhandledRejections).toEqual([]);
    expect(failures.uncaughtExceptions).toEqual([]);
  }, 60_000);

  describe('a connection cut or hung in the middle of an acquire (wait 500, ttl 30 s)', () => {
    const wait = 500;
    const ttl = 30_000;
    /** "Well before its TTL": a stray key would sit there for 30 s. */
    const goneWithinMs = 10_000;
    let proxy: TcpProxy;
    let redis: Redis;
    let app: LockApp;
    let fixture: AppBehindProxy;

    beforeEach(async () => {
      fixture = await startAppBehindProxy({ pollInterval: 60_000 });
      ({ proxy, redis, app } = fixture);
      // Connection up and scripts loaded before the fault.
      await (await app.locks.acquire('cut:warmup')).release();
    });

    afterEach(async () => {
      try {
        await settleRejections();
      } finally {
        await fixture?.close();
      }
      expect(fixture.failures.unhandledRejections).toEqual([]);
      expect(fixture.failures.uncaughtExceptions).toEqual([]);
    });

    /**
     * The call settled by its deadline; nobody else ever held the key, so it either got the lock
     * (released here) or could not reach Redis; and no key of it is left for its TTL.
     */
    async function expectSettledCleanly(key: string, outcome: Outcome<Lock>, label: string): Promise<void> {
      timings[`c: ${label}: call settled after`] = outcome.elapsedMs;
      if (outcome.value) {
        expect(ownerOf(await redis.get(`lock:{${key}}`))).toBe(outcome.value.token);
        await outcome.value.release();
      }
      // Behind everything the app sent before, on its own connection, the app sees the key free;
      // so does Redis, long before a 30 s lease could have run out.
      const since = Date.now();
      const freed = await eventually(
        async () => !(await app.locks.isLocked(key).catch(() => true)) && (await redis.exists(`lock:{${key}}`)) === 0,
        goneWithinMs,
        `"${key}" to be free`,
      ).then(
        () => true,
        () => false,
      );
      if (freed) timings[`c: ${label}: key gone after`] = Date.now() - since;
      expect({
        // Nobody else ever held the key: it got the lock, or it could not reach Redis in time.
        outcome: kindOf(outcome),
        settledByDeadline: outcome.elapsedMs <= wait + MIN_CALL_MS + DEADLINE_MARGIN_MS,
        freedWellBeforeTtl: freed,
        ...(freed ? {} : { leftBehind: { owner: ownerOf(await redis.get(`lock:{${key}}`)), pttl: await redis.pttl(`lock:{${key}}`) } }),
      }).toEqual({
        outcome: expect.stringMatching(/^(Lock|LockUnavailableError)$/),
        settledByDeadline: true,
        freedWellBeforeTtl: true,
      });
      // The app goes on working.
      const next = await app.locks.acquire(key, { wait: 5_000 });
      expect(ownerOf(await redis.get(`lock:{${key}}`))).toBe(next.token);
      await next.release();
    }

    it('cutAll() right after the acquire was sent', async () => {
      const key = 'cut:sent';
      const call = track(() => app.locks.acquire(key, { wait, ttl }));
      proxy.cutAll();
      await expectSettledCleanly(key, await call, 'cut after send');
    });

    it.each([false, true])(
      'the acquire ran in Redis but its reply was lost to a cut (fair: %s): no lock is left behind for its TTL',
      async (fair) => {
        const key = `cut:reply-lost:${fair}`;
        const fencesBefore = Number(await redis.get('lock:fences'));
        // Requests go through at once; replies are held back, then destroyed with the connection.
        proxy.setLatency(60_000, 'toClient');
        const call = track(() => app.locks.acquire(key, { wait, ttl, fair }));
        await eventually(async () => (await redis.exists(`lock:{${key}}`)) === 1, 5_000, 'the acquire to run in Redis');
        proxy.cutAll();
        proxy.setLatency(0, 'toClient');
        const outcome = await call;
        // The acquire did run: the prefix's fence counter moved.
        expect(Number(await redis.get('lock:fences'))).toBeGreaterThan(fencesBefore);
        await expectSettledCleanly(key, outcome, `reply lost (fair ${fair})`);
      },
    );

    it('blackholed during the acquire, then the network heals: the held-back acquire runs late and the queued release frees it', async () => {
      const key = 'cut:blackhole';
      const fencesBefore = Number(await redis.get('lock:fences'));
      proxy.blackhole(true);
      const outcome = await track(() => app.locks.acquire(key, { wait, ttl }));
      // Redis could not be reached in time: not a hang, not "busy".
      expect(kindOf(outcome)).toBe('LockUnavailableError');
      expect(Number(await redis.get('lock:fences'))).toBe(fencesBefore); // nothing got through yet
      proxy.blackhole(false);
      await expectSettledCleanly(key, outcome, 'blackhole then heal');
      // The late acquire did run in Redis (and was then released).
      expect(Number(await redis.get('lock:fences'))).toBeGreaterThan(fencesBefore);
    });

    it('blackholed during the acquire, then the hung connection is cut: the app reconnects and leaves no lock behind', async () => {
      const key = 'cut:blackhole-cut';
      proxy.blackhole(true);
      const outcome = await track(() => app.locks.acquire(key, { wait, ttl }));
      expect(kindOf(outcome)).toBe('LockUnavailableError');
      proxy.cutAll();
      proxy.blackhole(false);
      await expectSettledCleanly(key, outcome, 'blackhole then cut');
    });
  });

  describe('AUTH', () => {
    const password = 's3cret/p@ss:w0rd';
    let server: RedisServer;
    let redis: Redis;

    beforeAll(async () => {
      server = await RedisServer.start({ password });
      redis = server.client();
    });
    afterAll(async () => {
      await closeClient(redis);
      await server?.stop();
    });

    it('works through a URL carrying the password and through ioredis options { port, password }, waiting included', async () => {
      expect(server.url).toContain('@');
      const viaUrl = await startLockApp({ redis: server.url, pollInterval: 60_000 });
      const viaOptions = await startLockApp({ redis: { host: server.host, port: server.port, password }, pollInterval: 60_000 });
      try {
        const held = await viaUrl.locks.acquire('auth:1', { ttl: 60_000 });
        expect(ownerOf(await redis.get('lock:{auth:1}'))).toBe(held.token);
        expect(await viaOptions.locks.isLocked('auth:1')).toBe(true);
        expect(await viaOptions.locks.tryAcquire('auth:1')).toBeNull();
        // A waiter in the other app: its release subscriber has to authenticate too (poll 60 s, wait 20 s).
        const waiting = track(() => viaOptions.locks.acquire('auth:1', { wait: 20_000 }));
        await eventually(() => viaOptions.locks.leaseStats.waiters === 1, 10_000, 'the waiter to queue');
        await eventually(async () => (await releaseSubscribers(redis)) >= 1, 10_000, 'the release subscriber');
        await held.release();
        const woken = await waiting;
        expect(kindOf(woken)).toBe('Lock');
        const next = woken.value as Lock;
        expect(ownerOf(await redis.get('lock:{auth:1}'))).toBe(next.token);
        await next.release();
        expect(await viaUrl.locks.isLocked('auth:1')).toBe(false);
      } finally {
        await viaUrl.close();
        await viaOptions.close();
      }
    });

    it.each([
      ['a wrong password in ioredis options', () => ({ host: server.host, port: server.port, password: 'wrong' })],
      ['a wrong password in the URL', () => `redis://:wrong@${server.host}:${server.port}`],
      ['no password at all', () => ({ host: server.host, port: server.port })],
    ])('%s: calls fail with LockUnavailableError by their deadline, nothing crashes', async (_label, connection) => {
      const failures = watchProcessFailures();
      const app = await startLockApp({ redis: connection() });
      try {
        const [acquired, tried, checked] = await Promise.all([
          track(() => app.locks.acquire('auth:bad', { wait: 1_000 })),
          track(() => app.locks.tryAcquire('auth:bad:try')),
          track(() => app.locks.isLocked('auth:bad')),
        ]);
        expect({ acquire: kindOf(acquired), tryAcquire: kindOf(tried), isLocked: kindOf(checked) }).toEqual({
          acquire: 'LockUnavailableError',
          tryAcquire: 'LockUnavailableError',
          isLocked: 'LockUnavailableError',
        });
        expect(acquired.elapsedMs).toBeLessThanOrEqual(1_000 + MIN_CALL_MS + DEADLINE_MARGIN_MS);
        expect(tried.elapsedMs).toBeLessThanOrEqual(MIN_CALL_MS + DEADLINE_MARGIN_MS);
        expect(checked.elapsedMs).toBeLessThanOrEqual(MIN_CALL_MS + DEADLINE_MARGIN_MS);
        // The underlying Redis error is kept as the cause.
        expect(String((acquired.error as Error).cause)).toMatch(/WRONGPASS|NOAUTH|no reply/);
        expect(await redis.exists('lock:{auth:bad}', 'lock:{auth:bad:try}')).toBe(0);
        await settleRejections();
      } finally {
        failures.stop();
        await app.close();
      }
      expect(failures.unhandledRejections).toEqual([]);
      expect(failures.uncaughtExceptions).toEqual([]);
    });
  });
});

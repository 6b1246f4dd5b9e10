/**
 * The eight bugs an outside review found in the first version, one regression test each, on real
 * servers. Each test fails on the code before its fix (checked by reverting the fix locally).
 */
import { Redis } from 'ioredis';
import { LockConfigError, LockNotAcquiredError, LockUnavailableError, type LockModuleOptions } from '../lib/index.js';
import { newOwnerToken } from '../lib/owner-token.js';
import { lockKeyOf, RedisLockStore } from '../lib/stores/redis.store.js';
import { RedisCluster } from './support/redis-cluster.js';
import { RedisSentinelSet } from './support/redis-sentinel.js';
import { RedisServer, stopAllRedisServers } from './support/redis-server.js';
import { TcpProxy } from './support/tcp-proxy.js';
import { eventually, startLockApp, type LockApp } from './support/lock-app.js';

afterAll(async () => {
  await stopAllRedisServers();
});

describe('review regressions on a single Redis', () => {
  let server: RedisServer;
  let raw: Redis;
  let appA: LockApp;
  let appB: LockApp;
  const options = (): LockModuleOptions => ({ redis: { host: server.host, port: server.port }, wait: 0 });

  beforeAll(async () => {
    server = await RedisServer.start();
    raw = server.client();
    appA = await startLockApp(options());
    appB = await startLockApp(options());
  });
  afterAll(async () => {
    await appA?.close();
    await appB?.close();
    await raw?.quit();
  });

  it('1: a semaphore keeps its agreed permits while a holder is renewed past its first ttl, and leaves nothing behind', async () => {
    const held = await appA.locks.acquire('review:sem', { permits: 1, ttl: 300 });
    const renewalsAtStart = appA.locks.leaseStats.renewalsSent;
    // Several renewals: the lease has now outlived its first ttl more than once.
    await eventually(() => appA.locks.leaseStats.renewalsSent >= renewalsAtStart + 4, 20_000, 'renewals');
    expect(held.signal.aborted).toBe(false);
    await expect(appB.locks.tryAcquire('review:sem', { permits: 2 })).rejects.toBeInstanceOf(LockConfigError);
    // Every bookkeeping key of the semaphore expires with it.
    const keys = (await raw.keys('lock:{review:sem}*')).filter((key) => !key.endsWith(':fence'));
    expect(keys.length).toBeGreaterThan(0);
    for (const key of keys) expect(await raw.pttl(key)).toBeGreaterThan(0);
    await held.release();
    // Fences come from the prefix's shared counter: no key of this lock is left behind.
    expect(await raw.keys('lock:{review:sem}*')).toEqual([]);
  });

  it('2: an exclusive lock inside a permit scope of the same key is refused, and permits and the exclusive lock exclude each other', async () => {
    await appA.locks.withLock(
      'review:report',
      async () => {
        await expect(appA.locks.withLock('review:report', () => 'inner')).rejects.toBeInstanceOf(LockConfigError);
        await expect(appA.locks.tryAcquire('review:report', { mode: 'read' })).rejects.toBeInstanceOf(LockConfigError);
        // Another app's exclusive request waits for the permit holders.
        expect(await appB.locks.tryAcquire('review:report')).toBeNull();
      },
      { permits: 2 },
    );
    const exclusive = await appB.locks.acquire('review:report');
    expect(await appA.locks.tryAcquire('review:report', { permits: 2 })).toBeNull();
    await exclusive.release();
  });

  it('6: an attempt re-sent after a lost reply answers with its own fence, for permits and for readers', async () => {
    const store = RedisLockStore.create({ host: server.host, port: server.port }, { prefix: 'resend:' });
    try {
      for (const intent of [{ announceFor: 0, permits: 3 }, { announceFor: 0, mode: 'read' as const }]) {
        const key = `review:resend:${intent.mode ?? 'permits'}`;
        const first = newOwnerToken();
        const original = await store.acquire([key], first, 10_000, intent);
        const other = await store.acquire([key], newOwnerToken(), 10_000, intent);
        // ioredis re-sends the very same command when the reply was lost.
        const resent = await store.acquire([key], first, 10_000, intent);
        expect(original.acquired && other.acquired && resent.acquired).toBe(true);
        if (!original.acquired || !other.acquired || !resent.acquired) continue;
        expect(other.fences[0]).toBeGreaterThan(original.fences[0]);
        expect(resent.fences[0]).toBe(original.fences[0]);
      }
    } finally {
      await store.close();
    }
  });

  it('4: a grant whose reply arrives after its lease ran out is not handed out as held, and is given back', async () => {
    const proxy = await TcpProxy.start(server.port);
    const slow = await startLockApp({ redis: { host: server.host, port: proxy.port }, wait: 0 });
    try {
      await slow.locks.isLocked('warm-up'); // connected before the replies slow down
      proxy.setLatency(600, 'toClient');
      const attempt = slow.locks.acquire('review:slow', { ttl: 300 });
      await expect(attempt).rejects.toBeInstanceOf(LockUnavailableError);
      await expect(attempt).rejects.toThrow(/lease had already run out/);
      // The safety checker reads these figures from the cause (not from the message's wording).
      const { cause } = (await attempt.catch((error: unknown) => error)) as { cause: { name: string; ttl: number; tookMs: number } };
      expect(cause).toMatchObject({ name: 'LeaseRanOutError', ttl: 300 });
      expect(cause.tookMs).toBeGreaterThanOrEqual(300);
      // Another app gets the key: the late grant was given back or has expired.
      await eventually(async () => {
        const lock = await appB.locks.tryAcquire('review:slow');
        await lock?.release();
        return lock !== null;
      });
    } finally {
      proxy.setLatency(0);
      await slow.close();
      await proxy.close();
    }
  });
});

/** Bug 3, on every store that has read-write locks. */
function describeFairWriter(store: string, options: () => LockModuleOptions): void {
  it(`3: a fair writer keeps new readers out while it waits, then gets in (${store})`, async () => {
    const appA = await startLockApp({ ...options(), wait: 0 });
    const appB = await startLockApp({ ...options(), wait: 0 });
    try {
      const reader = await appA.locks.acquire('review:doc', { mode: 'read' });
      const writer = appB.locks.acquire('review:doc', { fair: true, wait: 30_000 });
      // Soon after the writer starts waiting, no new reader is admitted (before the fix: never).
      await eventually(async () => {
        const late = await appA.locks.tryAcquire('review:doc', { mode: 'read' });
        await late?.release();
        return late === null;
      }, 20_000, 'new readers to queue behind the fair writer');
      await reader.release();
      const held = await writer;
      expect(held.signal.aborted).toBe(false);
      await held.release();
    } finally {
      await appA.close();
      await appB.close();
    }
  });
}

describe('review regression 3 (fair writer and readers)', () => {
  let server: RedisServer;
  beforeAll(async () => {
    server = await RedisServer.start();
  });
  describeFairWriter('Redis', () => ({ redis: { host: server.host, port: server.port } }));
  describeFairWriter('memory', () => ({ store: 'memory', prefix: 'review-fair:' }));
});

describe('review regression 5 (waitForReplicas on a fair handoff)', () => {
  let set: RedisSentinelSet;
  beforeAll(async () => {
    set = await RedisSentinelSet.start({ replicas: 1, sentinels: 1 });
  }, 60_000);
  afterAll(async () => {
    await set?.stop();
  });

  it('5: a fair waiter handed the lock while the only replica is frozen does not get it', async () => {
    const settings = { redis: set.redisOptions(), waitForReplicas: 1, replicaTimeout: 200 };
    const holderApp = await startLockApp(settings);
    const waiterApp = await startLockApp(settings);
    const replicaPid = set.servers[1].pid as number;
    try {
      const holder = await holderApp.locks.acquire('review:handoff', { fair: true });
      const waiter = waiterApp.locks.acquire('review:handoff', { fair: true, wait: 3_000 });
      const outcome = waiter.then(
        (lock) => ({ lock }),
        (error: unknown) => ({ error }),
      );
      const master = await set.currentMaster();
      const raw = new Redis({ host: master.host, port: master.port });
      await eventually(async () => (await raw.llen('lock:{review:handoff}:queue')) === 1, 20_000, 'the waiter to queue');
      await raw.quit();
      process.kill(replicaPid, 'SIGSTOP');
      await holder.release();
      const result = await outcome;
      process.kill(replicaPid, 'SIGCONT');
      expect('error' in result ? result.error : result.lock).toBeInstanceOf(LockUnavailableError);
      expect(String((result as { error: Error }).error.message)).toMatch(/acknowledged the write within replicaTimeout/);
    } finally {
      process.kill(replicaPid, 'SIGCONT');
      await holderApp.close();
      await waiterApp.close();
    }
  });
});

describe('review regression 7 (keys starting with "}" on a Cluster)', () => {
  let cluster: RedisCluster;
  beforeAll(async () => {
    cluster = await RedisCluster.start({ masters: 3 });
  }, 60_000);
  afterAll(async () => {
    await cluster?.stop();
  });

  const oddKeys = ['}order:42', '}', '}}{', '}{x}', '{}', '}%7D', '%7D', '}\n✓'];

  it('7: every key, however odd, keeps all its Redis keys in one slot and maps to its own lock', async () => {
    const raw = cluster.client();
    try {
      const layouts = new Set<string>();
      for (const key of oddKeys) {
        const lockKey = lockKeyOf('lock:', key);
        layouts.add(lockKey);
        const slots = new Set<number>();
        for (const suffix of ['', ':fence', ':permits', ':permits:holds', ':queue']) {
          slots.add(Number(await raw.cluster('KEYSLOT', `${lockKey}${suffix}`)));
        }
        expect([key, slots.size]).toEqual([key, 1]);
      }
      expect(layouts.size).toBe(oddKeys.length);
    } finally {
      await raw.quit();
    }
  });

  it('7: a key starting with "}" can be locked, in every mode, on a Cluster', async () => {
    const app = await startLockApp({ redis: { cluster: cluster.startupNodes }, wait: 0 });
    try {
      for (const key of oddKeys) {
        const first = await app.locks.acquire(key);
        expect(await app.locks.isLocked(key)).toBe(true);
        await first.release();
        const second = await app.locks.acquire(key);
        expect(second.fence).toBeGreaterThan(first.fence);
        await second.release();
        await (await app.locks.acquire(key, { permits: 2 })).release();
        await (await app.locks.acquire(key, { mode: 'read' })).release();
        await (await app.locks.acquire(key, { fair: true })).release();
      }
      const many = await app.locks.acquire(oddKeys);
      await many.release();
    } finally {
      await app.close();
    }
  });
});

describe('review regression 8 (Redlock with one master down)', () => {
  let masters: RedisServer[];
  let appA: LockApp;
  let appB: LockApp;

  beforeAll(async () => {
    masters = await RedisServer.startMany(3);
    const redlock = masters.map((m) => ({ host: m.host, port: m.port }));
    // The default ttl: its per-master bound equals the per-call bound, the worst case.
    // A poll too slow to matter: a waiter gets in only by hearing the release.
    appA = await startLockApp({ redlock, wait: 0, pollInterval: 60_000 });
    appB = await startLockApp({ redlock, wait: 0 });
    await (await appA.locks.acquire('warm-up')).release();
    await (await appB.locks.acquire('warm-up')).release();
    // Both apps connected to every master first (a quorum answers without master 2): the case is
    // a master that goes down, not one never reached.
    for (const app of [appA, appB]) {
      await eventually(async () => (await app.locks.inspect('warm-up')).masters?.every((master) => master.up) === true, 10_000, 'every master to answer');
    }
    await masters[2].kill();
  });
  afterAll(async () => {
    await appA?.close();
    await appB?.close();
  });

  it('8: a held key is busy (never unavailable), a free key is taken, and release does not fail', async () => {
    for (let round = 0; round < 3; round++) {
      const held = await appB.locks.acquire('review:rl');
      expect(await appA.locks.tryAcquire('review:rl')).toBeNull();
      await expect(appA.locks.acquire('review:rl', { wait: 300 })).rejects.toBeInstanceOf(LockNotAcquiredError);
      await held.release();
      const free = await appA.locks.acquire('review:rl');
      expect(free.fence).toBeGreaterThan(held.fence);
      await free.release();
    }
  });

  it('8: a waiter is woken by the release although one master cannot announce it', async () => {
    const held = await appB.locks.acquire('review:rl:wake', { ttl: 60_000 });
    const waiting = appA.locks.acquire('review:rl:wake', { wait: 30_000 });
    const probe = masters[0].client();
    await eventually(async () => (await probe.exists('lock:{review:rl:wake}:wanted')) === 1, 20_000, 'the waiter to wait');
    await probe.quit();
    await held.release();
    // With a 60 s lease and a 60 s poll, only hearing the release lets the waiter in within its wait.
    const next = await waiting;
    expect(next.fence).toBeGreaterThan(held.fence);
    await next.release();
  });
});

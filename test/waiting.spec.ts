import { getEventListeners } from 'node:events';
import { Redis } from 'ioredis';
import { LockNotAcquiredError, type Lock, type LockService } from '../lib/index.js';
import type { RedisServer } from './support/redis-server.js';
import { eventually, startLockApp, startTwoApps, stopTwoApps, type LockApp } from './support/lock-app.js';
import { ownerOf } from './support/lock-value.js';
import { RedisMonitor, releaseAndExpectHandoff, releaseAndExpectSuccession } from './support/redis-monitor.js';
import { noSubscribeUserUrl } from './support/redis-admin.js';

describe('waiting for a busy lock', () => {
  let server: RedisServer;
  let redis: Redis;
  let appA: LockApp;
  let appB: LockApp;

  beforeAll(async () => {
    // A poll far longer than any wait below: only a release notification can wake a waiter in time.
    ({ server, redis, appA, appB } = await startTwoApps({ pollInterval: 600_000 }));
  });
  afterAll(() => stopTwoApps({ redis, appA, appB }));

  it('wakes a waiter in another app by the release, not by the poll', async () => {
    const held = await appA.locks.acquire('wake:1', { ttl: 600_000 });
    const waiting = appB.locks.acquire('wake:1', { wait: 30_000 });
    await eventually(() => appB.locks.leaseStats.waiters === 1, 10_000, 'the waiter to queue');
    await held.release();
    const got = await waiting;
    expect(got.fence).toBeGreaterThan(held.fence);
    await got.release();
  });

  it('wakes local waiters one release at a time, each getting the lock in turn', async () => {
    const held = await appA.locks.acquire('wake:2', { ttl: 600_000 });
    const order: number[] = [];
    const waiters = [0, 1, 2, 3].map(async (i) => {
      const lock = await appB.locks.acquire('wake:2', { wait: 30_000, ttl: 600_000 });
      order.push(i);
      await lock.release();
    });
    await eventually(() => appB.locks.leaseStats.waiters === 4, 10_000, 'four waiters');
    await held.release();
    await Promise.all(waiters);
    expect(order.sort()).toEqual([0, 1, 2, 3]);
  });

  it('leaves no waiter and no abort listener behind after a wait times out or is cancelled', async () => {
    const held = await appA.locks.acquire('wake:3', { ttl: 600_000 });
    const controller = new AbortController();
    await expect(appB.locks.acquire('wake:3', { wait: 100, signal: controller.signal })).rejects.toBeInstanceOf(
      LockNotAcquiredError,
    );
    expect(getEventListeners(controller.signal, 'abort')).toHaveLength(0);
    const cancelled = appB.locks.acquire('wake:3', { wait: 60_000, signal: controller.signal });
    await eventually(() => appB.locks.leaseStats.waiters === 1, 10_000, 'the waiter to queue');
    controller.abort();
    await expect(cancelled).rejects.toMatchObject({ name: 'AbortError' });
    expect(getEventListeners(controller.signal, 'abort')).toHaveLength(0);
    expect(appB.locks.leaseStats.waiters).toBe(0);
    await held.release();
  });

  describe.each([false, true])('under contention (fair: %s)', (fair) => {
    it('never lets two holders overlap, across two apps', async () => {
      let inside = 0;
      let overlaps = 0;
      let entries = 0;
      const fences: number[] = [];
      const worker = async (locks: LockService) => {
        for (let i = 0; i < 15; i++) {
          await locks.withLock(
            `contended:${fair}`,
            async (lock: Lock) => {
              inside += 1;
              entries += 1;
              if (inside > 1) overlaps += 1;
              fences.push(lock.fence);
              await new Promise((resolve) => setImmediate(resolve));
              inside -= 1;
            },
            { wait: 60_000, fair, ttl: 10_000 },
          );
        }
      };
      await Promise.all([appA, appB, appA, appB, appA, appB, appA, appB].map((app) => worker(app.locks)));
      expect(entries).toBe(8 * 15);
      expect(overlaps).toBe(0);
      for (let i = 1; i < fences.length; i++) expect(fences[i]).toBeGreaterThan(fences[i - 1]);
    });
  });
});

// Fair waiters, and default-mode waiters for one exclusive key, are queued in Redis and handed the
// lock by the holder's release.
describe.each([true, false])('queued waiters, handed the lock by the release (fair: %s)', (fair) => {
  let server: RedisServer;
  let redis: Redis;
  let appA: LockApp;
  let appB: LockApp;
  const queueLength = (key: string) => redis.llen(`lock:{${key}}:queue`);

  beforeAll(async () => {
    ({ server, redis, appA, appB } = await startTwoApps({ fair }));
  });
  afterAll(() => stopTwoApps({ redis, appA, appB }));

  it('serves waiters from two apps in arrival order', async () => {
    const key = `fair:order:${fair}`;
    // Held by a third app: in the default mode, a caller of the holding app itself would wait in
    // that app for its release rather than in the Redis queue (local succession).
    const holderApp = await startLockApp({ redis: server.url, fair });
    const held = await holderApp.locks.acquire(key);
    const order: string[] = [];
    const waiters: Array<Promise<void>> = [];
    const apps = [appB, appA, appB, appA, appB];
    for (let i = 0; i < apps.length; i++) {
      waiters.push(
        apps[i].locks.acquire(key, { wait: 30_000 }).then(async (lock) => {
          order.push(`w${i}`);
          await lock.release();
        }),
      );
      // The next waiter arrives only once this one has its place in the Redis queue.
      await eventually(async () => (await queueLength(key)) === i + 1, 10_000, `waiter ${i} to queue`);
    }
    await held.release();
    await Promise.all(waiters);
    await holderApp.close();
    expect(order).toEqual(['w0', 'w1', 'w2', 'w3', 'w4']);
    expect(await redis.exists(`lock:{${key}}:queue`, `lock:{${key}}:waiting`, `lock:{${key}}`)).toBe(0);
  });

  it('hands the lock straight to the first waiter in the release itself', async () => {
    const key = `fair:handoff:${fair}`;
    const held = await appA.locks.acquire(key);
    const waiting = appB.locks.acquire(key, { wait: 30_000 });
    await eventually(async () => (await queueLength(key)) === 1, 10_000, 'the waiter to queue');
    await held.release();
    // Before the waiter has even heard of it, Redis already records it as the holder.
    const holderToken = ownerOf(await redis.get(`lock:{${key}}`));
    const got = await waiting;
    expect(holderToken).toBe(got.token);
    expect(got.fence).toBe(held.fence + 1);
    await got.release();
  });

  it('a waiter handed the lock holds it without asking Redis again', async () => {
    const key = `fair:no-extra-request:${fair}`;
    // Waiters that never refresh their place during the test, so every command is accounted for.
    const holderApp = await startLockApp({ redis: server.url, fair, pollInterval: 600_000 });
    const waiterApp = await startLockApp({ redis: server.url, fair, pollInterval: 600_000 });
    const monitor = await RedisMonitor.start(server.port);
    try {
      // A first wait subscribes to release messages and then asks again at once (a release
      // during the subscribe would go unheard): warm that up, so the round below is the steady state.
      const warmHeld = await holderApp.locks.acquire(`${key}:warm-up`);
      const warmWaiting = waiterApp.locks.acquire(`${key}:warm-up`, { wait: 30_000 });
      await eventually(async () => (await queueLength(`${key}:warm-up`)) === 1, 10_000, 'the warm-up waiter to queue');
      await warmHeld.release();
      await (await warmWaiting).release();

      const held = await holderApp.locks.acquire(key);
      const waiting = waiterApp.locks.acquire(key, { wait: 30_000 });
      await eventually(async () => (await queueLength(key)) === 1, 10_000, 'the waiter to queue');
      // The waiter's only commands are the attempts before the release; nothing after it.
      const got = await releaseAndExpectHandoff(monitor, redis, held, waiting);
      expect(got.fence).toBe(held.fence + 1);
      await got.release();
    } finally {
      monitor.stop();
      await holderApp.close();
      await waiterApp.close();
    }
  });

  it('a waiter in the releasing app is handed the lock by the release itself, with no release message', async () => {
    const key = `fair:same-app:${fair}`;
    // This user may publish (the release scripts announce) but not subscribe: no release message
    // reaches the app. Without the release's own reply, the waiter would have to ask Redis again
    // (at its next poll or at the end of its wait) to learn that it holds the lock.
    const app = await startLockApp({ redis: await noSubscribeUserUrl(server.port), fair, pollInterval: 600_000 });
    const monitor = await RedisMonitor.start(server.port);
    try {
      const held = await app.locks.acquire(key, { ttl: 600_000 });
      const waiting = app.locks.acquire(key, { wait: 20_000 });
      let got: Lock;
      if (fair) {
        await eventually(async () => (await queueLength(key)) === 1, 10_000, 'the waiter to queue');
        got = await releaseAndExpectHandoff(monitor, redis, held, waiting);
      } else {
        // The default mode: the caller waits in the app for the app's own release (local succession).
        await eventually(() => app.locks.leaseStats.waiters === 1, 10_000, 'the caller to wait');
        expect(await queueLength(key)).toBe(0);
        got = await releaseAndExpectSuccession(monitor, redis, held, waiting);
      }
      expect(ownerOf(await redis.get(`lock:{${key}}`))).toBe(got.token);
      expect(got.fence).toBe(held.fence + 1);
      await got.release();
    } finally {
      monitor.stop();
      await app.close();
    }
  });

  it('a grant message that names an attempt whose lease has run out is not taken as a hold', async () => {
    const key = `fair:late-grant:${fair}`;
    const held = await appA.locks.acquire(key, { ttl: 600_000 });
    let resolved: Lock | undefined;
    const ttl = 300;
    const waiting = appB.locks.acquire(key, { wait: 30_000, ttl }).then((lock) => (resolved = lock));
    await eventually(async () => (await queueLength(key)) === 1, 10_000, 'the waiter to queue');
    const [entry] = await redis.lrange(`lock:{${key}}:queue`, 0, 0);
    const token = entry.slice(0, entry.indexOf(':'));
    // Attempt 1 queued the waiter; once a ttl has passed since, a grant naming it is stale
    // (e.g. a message that sat in a paused process while its lease ran out and someone else took it).
    await new Promise((resolve) => setTimeout(resolve, ttl * 2));
    const forgedFence = 999_999;
    await redis.publish('lock:released', `h${token}${forgedFence}:1:${key}`);
    await new Promise((resolve) => setTimeout(resolve, 500));
    expect(resolved).toBeUndefined();
    await held.release();
    const got = await waiting;
    expect(got.fence).not.toBe(forgedFence);
    expect(got.fence).toBeGreaterThan(held.fence);
    await got.release();
  });

  it('skips a waiter that gave up, and one whose process stopped refreshing its place', async () => {
    const key = `fair:gone:${fair}`;
    const held = await appA.locks.acquire(key);
    await expect(appB.locks.acquire(key, { wait: 150 })).rejects.toBeInstanceOf(LockNotAcquiredError);
    await eventually(async () => (await queueLength(key)) === 0, 10_000, 'the waiter that gave up to leave the queue');
    const waiting = appB.locks.acquire(key, { wait: 30_000 });
    await eventually(async () => (await queueLength(key)) === 1, 10_000, 'the live waiter to queue');
    // A crashed waiter ahead of it: queued first, but its presence ran out long ago.
    await redis.lpush(`lock:{${key}}:queue`, `${'f'.repeat(32)}:30000`);
    await redis.zadd(`lock:{${key}}:waiting`, 1, `${'f'.repeat(32)}:30000`);
    await held.release();
    const got = await waiting;
    expect(ownerOf(await redis.get(`lock:{${key}}`))).toBe(got.token);
    await got.release();
    expect(await redis.exists(`lock:{${key}}`)).toBe(0);
  });
});

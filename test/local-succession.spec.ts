import { Redis } from 'ioredis';
import type { RedisServer } from './support/redis-server.js';
import { eventually, startLockApp, startTwoApps, stopTwoApps, type LockApp } from './support/lock-app.js';
import { ownerOf } from './support/lock-value.js';
import { RedisMonitor, releaseAndExpectSuccession } from './support/redis-monitor.js';

// A caller waiting for a key (one key, default mode) that its own LockService holds waits in the
// service, and the holder's release hands it the key in the same script, unless a waiter of another
// instance waits for it.
describe('local succession: a release hands the key to a caller of the same service', () => {
  let server: RedisServer;
  let redis: Redis;
  let appA: LockApp;
  let appB: LockApp;
  const lockKey = (key: string) => `lock:{${key}}`;
  const queueLength = (key: string) => redis.llen(`${lockKey(key)}:queue`);
  const publishes = async () => Number(/cmdstat_publish:calls=(\d+)/.exec(await redis.info('commandstats'))?.[1] ?? 0);

  beforeAll(async () => {
    // A poll far longer than any wait below: a waiter only gets the key in time if it is handed it,
    // or woken by a release.
    ({ server, redis, appA, appB } = await startTwoApps({ pollInterval: 600_000 }));
  });
  afterAll(() => stopTwoApps({ redis, appA, appB }));

  it('hands the key over in the release: the caller asks Redis nothing, and nothing is published', async () => {
    const key = 'succession:direct';
    const monitor = await RedisMonitor.start(server.port);
    try {
      const held = await appA.locks.acquire(key, { ttl: 600_000 });
      const waiting = appA.locks.acquire(key, { wait: 30_000 });
      await eventually(() => appA.locks.leaseStats.waiters === 1, 10_000, 'the caller to wait');
      expect(await queueLength(key)).toBe(0);
      expect(await redis.exists(`${lockKey(key)}:wanted`)).toBe(0);
      const published = await publishes();
      const got = await releaseAndExpectSuccession(monitor, redis, held, waiting);
      expect(got.fence).toBe(held.fence + 1);
      expect(ownerOf(await redis.get(lockKey(key)))).toBe(got.token);
      expect(await publishes()).toBe(published);
      await got.release();
      expect(await redis.exists(lockKey(key))).toBe(0);
    } finally {
      monitor.stop();
    }
  });

  it('hands the key down a line of callers, one release at a time, in arrival order', async () => {
    const key = 'succession:line';
    const held = await appA.locks.acquire(key, { ttl: 600_000 });
    const order: number[] = [];
    const fences: number[] = [];
    const callers = [0, 1, 2, 3].map(async (i) => {
      const lock = await appA.locks.acquire(key, { wait: 30_000 });
      order.push(i);
      fences.push(lock.fence);
      await lock.release();
    });
    await eventually(() => appA.locks.leaseStats.waiters === 4, 10_000, 'four callers to wait');
    await held.release();
    await Promise.all(callers);
    expect(order).toEqual([0, 1, 2, 3]);
    expect(fences).toEqual([1, 2, 3, 4].map((n) => held.fence + n));
    expect(await queueLength(key)).toBe(0);
    expect(await redis.exists(lockKey(key))).toBe(0);
  });

  it('lets a waiter of another instance, queued in Redis, go first', async () => {
    const key = 'succession:other-first';
    const held = await appA.locks.acquire(key, { ttl: 600_000 });
    const remote = appB.locks.acquire(key, { wait: 30_000 });
    await eventually(async () => (await queueLength(key)) === 1, 10_000, "the other app's waiter to queue");
    let localHolds = false;
    const local = appA.locks.acquire(key, { wait: 30_000 }).then((lock) => {
      localHolds = true;
      return lock;
    });
    await eventually(() => appA.locks.leaseStats.waiters === 1, 10_000, 'the local caller to wait');
    await held.release();
    const remoteLock = await remote;
    expect(ownerOf(await redis.get(lockKey(key)))).toBe(remoteLock.token);
    expect(localHolds).toBe(false);
    await remoteLock.release();
    const localLock = await local;
    expect(localLock.fence).toBe(remoteLock.fence + 1);
    await localLock.release();
  });

  it('does not hand the key to its own caller while a reader of another instance waits for it', async () => {
    const key = 'succession:reader';
    const held = await appA.locks.acquire(key, { ttl: 600_000 });
    const reader = appB.locks.acquire(key, { mode: 'read', wait: 30_000 });
    // The reader's mark names its instance: a waiter of another instance than the releasing one.
    await eventually(async () => (await redis.get(`${lockKey(key)}:wanted`)) === appB.locks.instanceId, 10_000, 'the reader to wait');
    const local = appA.locks.acquire(key, { wait: 30_000 });
    await eventually(() => appA.locks.leaseStats.waiters === 1, 10_000, 'the local caller to wait');
    const published = await publishes();
    await held.release();
    // Not handed over: the release freed the key and announced it, so the reader could take it.
    expect(await publishes()).toBe(published + 1);
    // Whoever gets it first lets it go, so the other gets it too.
    const done = await Promise.all([
      reader.then(async (lock) => {
        await lock.release();
        return 'reader';
      }),
      local.then(async (lock) => {
        await lock.release();
        return 'local';
      }),
    ]);
    expect(done.sort()).toEqual(['local', 'reader']);
  });

  it('marks a key wanted by waiters of two instances as wanted by anyone', async () => {
    const key = 'succession:two-marks';
    const holderApp = await startLockApp({ redis: server.url, pollInterval: 600_000 });
    try {
      const held = await holderApp.locks.acquire(key, { ttl: 600_000 });
      const first = appA.locks.acquire(key, { wait: 30_000 });
      await eventually(async () => (await redis.get(`${lockKey(key)}:wanted`)) === appA.locks.instanceId, 10_000, 'the first mark');
      const second = appB.locks.acquire(key, { wait: 30_000 });
      await eventually(async () => (await redis.get(`${lockKey(key)}:wanted`)) === '*', 10_000, 'the second mark');
      await held.release();
      const a = await first;
      await a.release();
      const b = await second;
      expect(b.fence).toBe(a.fence + 1);
      await b.release();
    } finally {
      await holderApp.close();
    }
  });

  it('gives the key back when the caller gives up while the release is handing it over', async () => {
    const key = 'succession:gave-up';
    const held = await appA.locks.acquire(key, { ttl: 600_000 });
    const controller = new AbortController();
    const waiting = appA.locks.acquire(key, { wait: 30_000, signal: controller.signal });
    await eventually(() => appA.locks.leaseStats.waiters === 1, 10_000, 'the caller to wait');
    const releasing = held.release(); // sent now, offering the key to the waiting caller...
    controller.abort(); // ...who gives up before the answer comes back
    await expect(waiting).rejects.toThrow();
    await releasing;
    await eventually(async () => (await redis.exists(lockKey(key))) === 0, 10_000, 'the key to be given back');
    const next = await appB.locks.tryAcquire(key);
    expect(next).not.toBeNull();
    // The release did hand it over (fence + 1) before the give-back: the next holder is one later.
    expect(next?.fence).toBe(held.fence + 2);
    expect(appA.locks.leaseStats.waiters).toBe(0);
    await next?.release();
  });

  it("puts its caller back in line when its release hands the key to another caller of its own, queued in Redis", async () => {
    const key = 'succession:put-back';
    const holderApp = await startLockApp({ redis: server.url, pollInterval: 600_000 });
    const monitor = await RedisMonitor.start(server.port);
    try {
      const held = await holderApp.locks.acquire(key, { ttl: 600_000 });
      // Two callers of appA queue in Redis (the key is another app's)...
      const firstLock = appA.locks.acquire(key, { wait: 30_000 });
      await eventually(async () => (await queueLength(key)) === 1, 10_000, 'the first caller to queue');
      const secondLock = appA.locks.acquire(key, { wait: 30_000 });
      await eventually(async () => (await queueLength(key)) === 2, 10_000, 'the second caller to queue');
      await held.release();
      const first = await firstLock;
      // ...and a third lines up in appA, which holds the key now.
      const thirdLock = appA.locks.acquire(key, { wait: 30_000 });
      await eventually(() => appA.locks.leaseStats.waiters === 2, 10_000, 'the third caller to line up');
      expect(await queueLength(key)).toBe(1);
      // The release offers the key to the third, but the second, queued in Redis, comes first.
      await first.release();
      const second = await secondLock;
      expect(second.fence).toBe(first.fence + 1);
      // The third was put back in line, and gets the key from the second's release. Both releases
      // named it; it asked Redis nothing itself.
      await second.release();
      const third = await thirdLock;
      expect(third.fence).toBe(second.fence + 1);
      const naming = (await monitor.scriptCalls(redis)).filter((line) => line.includes(third.token));
      expect(naming).toHaveLength(2);
      expect(naming[0]).toContain(first.token);
      expect(naming[1]).toContain(second.token);
      await third.release();
      expect(await redis.exists(lockKey(key), `${lockKey(key)}:queue`)).toBe(0);
    } finally {
      monitor.stop();
      await holderApp.close();
    }
  });

  it('gives back, before its connection closes, a key its release handed to a caller when the app shuts down', async () => {
    const key = 'succession:shutdown';
    const app = await startLockApp({ redis: server.url, pollInterval: 600_000 });
    const held = await app.locks.acquire(key, { ttl: 600_000 });
    const waiting = app.locks.acquire(key, { wait: 30_000, ttl: 600_000 }).then(
      (lock) => lock,
      (error: unknown) => error,
    );
    await eventually(() => app.locks.leaseStats.waiters === 1, 10_000, 'the caller to wait');
    const releasing = held.release(); // offers the key to the caller...
    await app.close(); // ...while the app shuts down
    await releasing;
    await waiting; // usually LockUnavailableError (shut down); a caller admitted first was released by the shutdown
    expect(await redis.exists(lockKey(key))).toBe(0);
  });

  it('sends its callers to Redis when the holder loses its lease', async () => {
    const key = 'succession:lost';
    const held = await appA.locks.acquire(key, { ttl: 1_000, autoExtend: false });
    const waiting = appA.locks.acquire(key, { wait: 120_000 });
    await eventually(() => appA.locks.leaseStats.waiters === 1, 10_000, 'the caller to wait');
    // No release comes, and the poll is 10 minutes: only the lost lease sends the caller to Redis.
    const got = await waiting;
    expect(held.signal.aborted).toBe(true);
    expect(got.fence).toBe(held.fence + 1);
    await got.release();
    await held.release();
  }, 60_000);
});

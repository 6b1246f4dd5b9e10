import { Redis } from 'ioredis';
import { Lock, LockNotAcquiredError } from '../lib/index.js';
import { RedisServer, stopAllRedisServers } from './support/redis-server.js';
import { eventually, startLockApp, type LockApp } from './support/lock-app.js';
import { ownerOf } from './support/lock-value.js';

const delay = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

describe('Reentrancy within one async call chain', () => {
  let server: RedisServer;
  let appA: LockApp;
  let appB: LockApp;
  let redis: Redis;

  beforeAll(async () => {
    server = await RedisServer.start();
    redis = server.client();
    // wait: 0 everywhere: a reentrant take must succeed at once, never by waiting.
    appA = await startLockApp({ redis: server.url, wait: 0 });
    appB = await startLockApp({ redis: server.url, wait: 0 });
  });

  afterAll(async () => {
    await appA?.close();
    await appB?.close();
    await redis?.quit();
    await stopAllRedisServers();
  });

  const owner = (key: string): Promise<string | null> => redis.get(`lock:{${key}}`).then(ownerOf);

  it('nested withLock on the same key (wait: 0) shares the outer token and fence; freed when the outermost returns', async () => {
    const key = 're:nested';
    let outerToken = '';
    const result = await appA.locks.withLock(key, async (outer) => {
      outerToken = outer.token;
      const inner = await appA.locks.withLock(
        key,
        async (lock) => {
          expect(lock.token).toBe(outer.token);
          expect(lock.fence).toBe(outer.fence);
          expect(lock.keys).toEqual([key]);
          expect(await owner(key)).toBe(outer.token);
          return 'inner';
        },
        { wait: 0 },
      );
      expect(inner).toBe('inner');
      // The inner withLock returned: the outer still holds the key.
      expect(await appB.locks.isLocked(key)).toBe(true);
      expect(await appB.locks.tryAcquire(key)).toBeNull();
      expect(await owner(key)).toBe(outer.token);
      expect(outer.signal.aborted).toBe(false);
      return 'outer';
    });
    expect(result).toBe('outer');
    expect(outerToken).toMatch(/^[0-9a-f]{60}$/);
    expect(await appB.locks.isLocked(key)).toBe(false);
    expect(await owner(key)).toBeNull();
  });

  it('acquire() of the held key inside withLock succeeds at once and is counted: releasing it keeps the key', async () => {
    const key = 're:acquire';
    await appA.locks.withLock(key, async (outer) => {
      const inner = await appA.locks.acquire(key, { wait: 0 });
      expect(inner).toBeInstanceOf(Lock);
      expect(inner.token).toBe(outer.token);
      expect(inner.fence).toBe(outer.fence);
      await inner.release();
      expect(inner.isReleased).toBe(true);
      expect(await appB.locks.isLocked(key)).toBe(true);
      expect(await owner(key)).toBe(outer.token);

      // Taken twice more and released in the other order: still counted.
      const second = await appA.locks.tryAcquire(key);
      const third = await appA.locks.acquire(key, { wait: 0 });
      expect(second?.token).toBe(outer.token);
      await third.release();
      await second?.release();
      expect(await owner(key)).toBe(outer.token);
      expect(outer.signal.aborted).toBe(false);
    });
    expect(await owner(key)).toBeNull();
  });

  it('does not let a call chain started outside withLock reenter: it gets null from tryAcquire and waits in acquire', async () => {
    const key = 're:outsider';
    let open!: () => void;
    const gate = new Promise<void>((resolve) => (open = resolve));
    // Both continuations are registered here, outside any withLock, so they belong to another chain.
    const outsiderTry = gate.then(() => appA.locks.tryAcquire(key));
    let waiterSettled = false;
    const outsiderWait = gate
      .then(() => appA.locks.acquire(key, { wait: 20_000 }))
      .finally(() => (waiterSettled = true));
    let outerToken = '';
    let outerFence = 0;

    await appA.locks.withLock(key, async (outer) => {
      outerToken = outer.token;
      outerFence = outer.fence;
      open();
      expect(await outsiderTry).toBeNull();
      // The waiter is still waiting while we hold the key (it would have resolved by now if it had reentered).
      await delay(300);
      expect(waiterSettled).toBe(false);
      expect(await owner(key)).toBe(outer.token);
    });

    const waited = await outsiderWait;
    expect(waited.token).not.toBe(outerToken);
    expect(waited.fence).toBeGreaterThan(outerFence);
    expect(await owner(key)).toBe(waited.token);
    await waited.release();
    expect(await owner(key)).toBeNull();
  });

  it('does not reenter from a setImmediate-started chain created before withLock', async () => {
    const key = 're:immediate';
    let release!: () => void;
    const started = new Promise<Lock | null>((resolve) => {
      // Scheduled outside withLock; it runs later, while the lock is held, but in its own chain.
      setImmediate(() => {
        new Promise<void>((r) => (release = r)).then(() => resolve(appA.locks.tryAcquire(key)), () => undefined);
      });
    });
    await eventually(() => release !== undefined, 20_000, 'the setImmediate chain to start');
    await appA.locks.withLock(key, async () => {
      release();
      expect(await started).toBeNull();
    });
    expect(await owner(key)).toBeNull();
  });

  it('multi-key reentry: inside withLock("a"), withLock(["a","b"]) takes only "b" anew', async () => {
    const [a, b] = ['re:multi:a', 're:multi:b'];
    await appA.locks.withLock(a, async (outer) => {
      await appA.locks.withLock(
        [a, b],
        async (both) => {
          expect(both.keys).toEqual([a, b]);
          expect(both.fences[a]).toBe(outer.fence);
          // "a" is still the outer holder's entry in Redis; "b" was taken with a token of its own.
          expect(await owner(a)).toBe(outer.token);
          const bOwner = await owner(b);
          expect(bOwner).toMatch(/^[0-9a-f]{60}$/);
          expect(bOwner).not.toBe(outer.token);
          expect(both.token).toBe(bOwner);
          expect(await appB.locks.tryAcquire(b)).toBeNull();
        },
        { wait: 0 },
      );
      // "b" is free again; "a" is still held by the outer withLock.
      expect(await owner(b)).toBeNull();
      expect(await appB.locks.isLocked(b)).toBe(false);
      expect(await owner(a)).toBe(outer.token);
      expect(await appB.locks.tryAcquire(a)).toBeNull();
      expect(outer.signal.aborted).toBe(false);
    });
    expect(await owner(a)).toBeNull();
    expect(await owner(b)).toBeNull();
  });

  it('forks share the lock: two Promise.all branches inside withLock("k") both withLock("k") and run together', async () => {
    const key = 're:fork';
    let inside = 0;
    let bothInsideAtOnce = false;
    const branch = (name: string): Promise<string> =>
      appA.locks.withLock(
        key,
        async (lock) => {
          inside += 1;
          // Each branch stays in until both are in: they hold the shared lock concurrently.
          await eventually(() => inside === 2, 20_000, 'both branches to be inside');
          bothInsideAtOnce = true;
          expect(await owner(key)).toBe(lock.token);
          return name;
        },
        { wait: 0 },
      );

    await appA.locks.withLock(key, async (outer) => {
      expect(await Promise.all([branch('left'), branch('right')])).toEqual(['left', 'right']);
      // Both branches returned; the outer holder still has it.
      expect(await owner(key)).toBe(outer.token);
      expect(await appB.locks.tryAcquire(key)).toBeNull();
    });
    expect(bothInsideAtOnce).toBe(true);
    expect(await owner(key)).toBeNull();
    expect(await appB.locks.isLocked(key)).toBe(false);
  });

  it('two LockService instances in one process do not share reentrancy', async () => {
    const key = 're:apps';
    await appA.locks.withLock(key, async (lock) => {
      expect(await appB.locks.tryAcquire(key)).toBeNull();
      await expect(appB.locks.acquire(key, { wait: 0 })).rejects.toBeInstanceOf(LockNotAcquiredError);
      await expect(appB.locks.withLock(key, () => 'entered', { wait: 0 })).rejects.toBeInstanceOf(LockNotAcquiredError);
      expect(await owner(key)).toBe(lock.token);
    });
    expect(await owner(key)).toBeNull();
  });
});

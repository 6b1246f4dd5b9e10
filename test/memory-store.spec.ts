import { LockLostError, LockNotAcquiredError } from '../lib/index.js';
import { aborted, eventually, startLockApp, type LockApp } from './support/lock-app.js';

describe("store: 'memory'", () => {
  let appA: LockApp;
  let appB: LockApp;

  beforeAll(async () => {
    appA = await startLockApp({ store: 'memory', prefix: 'mem:', wait: 0 });
    appB = await startLockApp({ store: 'memory', prefix: 'mem:', wait: 0 });
  });
  afterAll(async () => {
    await appA?.close();
    await appB?.close();
  });

  it('is shared by the apps of one process, like one Redis behind several instances', async () => {
    const lock = await appA.locks.acquire('shared');
    expect(await appB.locks.tryAcquire('shared')).toBeNull();
    await lock.release();
    const other = await appB.locks.acquire('shared');
    expect(other.fence).toBeGreaterThan(lock.fence);
    await other.release();
  });

  it('keeps apps with different prefixes apart', async () => {
    const elsewhere = await startLockApp({ store: 'memory', prefix: 'mem-other:', wait: 0 });
    const lock = await appA.locks.acquire('apart');
    const free = await elsewhere.locks.tryAcquire('apart');
    expect(free).not.toBeNull();
    await free?.release();
    await lock.release();
    await elsewhere.close();
  });

  it('lets a lease expire when it is not renewed, and reports it through the signal', async () => {
    const lock = await appA.locks.acquire('expiring', { ttl: 100, autoExtend: false });
    expect(await aborted(lock.signal)).toBeInstanceOf(LockLostError);
    const next = await appB.locks.acquire('expiring', { wait: 5_000 });
    await expect(lock.extend()).rejects.toBeInstanceOf(LockLostError);
    await lock.release(); // quiet, and does not free the next holder
    expect(await appA.locks.isLocked('expiring')).toBe(true);
    await next.release();
  });

  it('wakes a waiter on release and times out a waiter that waits too long', async () => {
    const held = await appA.locks.acquire('wake', { ttl: 60_000 });
    await expect(appB.locks.acquire('wake', { wait: 50 })).rejects.toBeInstanceOf(LockNotAcquiredError);
    const waiting = appB.locks.acquire('wake', { wait: 10_000 });
    await eventually(() => appB.locks.leaseStats.waiters === 1, 10_000, 'the waiter');
    await held.release();
    await (await waiting).release();
  });

  it('serves fair waiters in arrival order, handing the lock over directly', async () => {
    const held = await appA.locks.acquire('fair', { fair: true });
    const order: number[] = [];
    const waiting = () => appA.locks.leaseStats.waiters + appB.locks.leaseStats.waiters;
    const waiters: Array<Promise<void>> = [];
    for (const [i, app] of [appB, appA, appB].entries()) {
      waiters.push(
        app.locks.acquire('fair', { fair: true, wait: 10_000 }).then(async (lock) => {
          order.push(i);
          await lock.release();
        }),
      );
      // The next one arrives only once this one is queued.
      await eventually(() => waiting() === i + 1, 10_000, `waiter ${i} to queue`);
    }
    await held.release();
    await Promise.all(waiters);
    expect(order).toEqual([0, 1, 2]);
  });

  it('is reentrant inside withLock, as on Redis', async () => {
    await appA.locks.withLock('reentrant', async (outer) => {
      await appA.locks.withLock('reentrant', async (inner) => {
        expect(inner.token).toBe(outer.token);
      });
      expect(await appB.locks.isLocked('reentrant')).toBe(true);
    });
    expect(await appB.locks.isLocked('reentrant')).toBe(false);
  });
});

import type { LockModuleOptions } from '../../lib/index.js';
import { eventually, startLockApp, type LockApp } from './lock-app.js';

/**
 * The behaviour every topology must show, run against each one (single Redis, Sentinel, Cluster,
 * Redlock): acquire/release, exclusion between two apps, renewal, fence increase, multi-key.
 * `options` is read in beforeAll, after the topology has started.
 */
export function describeCoreBehaviour(topology: string, options: () => LockModuleOptions): void {
  describe(`core behaviour on ${topology}`, () => {
    let appA: LockApp;
    let appB: LockApp;

    beforeAll(async () => {
      appA = await startLockApp({ ...options(), wait: 0 });
      appB = await startLockApp({ ...options(), wait: 0 });
    });
    afterAll(async () => {
      await appA?.close();
      await appB?.close();
    });

    it('acquires and releases', async () => {
      const lock = await appA.locks.acquire('core:1');
      expect(await appB.locks.isLocked('core:1')).toBe(true);
      await lock.release();
      expect(await appB.locks.isLocked('core:1')).toBe(false);
    });

    it('excludes a second app until the holder releases, then hands over', async () => {
      const held = await appA.locks.acquire('core:2');
      expect(await appB.locks.tryAcquire('core:2')).toBeNull();
      const waiting = appB.locks.acquire('core:2', { wait: 20_000 });
      await held.release();
      const next = await waiting;
      expect(next.fence).toBeGreaterThan(held.fence);
      await next.release();
    });

    it('renews the lease while held', async () => {
      const lock = await appA.locks.acquire('core:3', { ttl: 600 });
      const sent = appA.locks.leaseStats.renewalsSent;
      await eventually(() => appA.locks.leaseStats.renewalsSent >= sent + 3, 20_000, 'three renewals');
      expect(lock.signal.aborted).toBe(false);
      expect(await appB.locks.tryAcquire('core:3')).toBeNull();
      await lock.release();
    });

    it('hands out strictly increasing fences', async () => {
      const fences: number[] = [];
      for (const app of [appA, appB, appA, appB]) {
        const lock = await app.locks.acquire('core:4');
        fences.push(lock.fence);
        await lock.release();
      }
      for (let i = 1; i < fences.length; i++) expect(fences[i]).toBeGreaterThan(fences[i - 1]);
    });

    it('takes several keys all or nothing', async () => {
      // Keys chosen to land in different Cluster slots.
      const keys = ['core:multi:a', 'core:multi:b', 'core:multi:c', 'core:multi:d'];
      const blocker = await appB.locks.acquire(keys[2]);
      expect(await appA.locks.tryAcquire(keys)).toBeNull();
      for (const key of [keys[0], keys[1], keys[3]]) expect(await appB.locks.isLocked(key)).toBe(false);
      await blocker.release();
      const all = await appA.locks.acquire(keys);
      for (const key of keys) expect(await appB.locks.isLocked(key)).toBe(true);
      await all.release();
      for (const key of keys) expect(await appB.locks.isLocked(key)).toBe(false);
    });
  });
}

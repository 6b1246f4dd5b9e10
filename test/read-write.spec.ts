import { LockConfigError, type LockModuleOptions } from '../lib/index.js';
import { RedisServer, stopAllRedisServers } from './support/redis-server.js';
import { eventually, startLockApp, type LockApp } from './support/lock-app.js';

function describeReadWrite(store: string, options: () => LockModuleOptions): void {
  describe(`read-write locks on ${store}`, () => {
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

    it('lets readers share the key, and keeps them out while a writer holds it', async () => {
      const r1 = await appA.locks.acquire('rw:1', { mode: 'read' });
      const r2 = await appB.locks.acquire('rw:1', { mode: 'read' });
      expect(r2.fence).toBeGreaterThan(r1.fence);
      expect(await appB.locks.tryAcquire('rw:1')).toBeNull(); // the writer is kept out
      await r1.release();
      await r2.release();
      const writer = await appA.locks.acquire('rw:1');
      expect(await appB.locks.tryAcquire('rw:1', { mode: 'read' })).toBeNull();
      await writer.release();
      await (await appB.locks.acquire('rw:1', { mode: 'read' })).release();
    });

    it('makes a writer wait for every reader, and queues new readers behind a waiting writer', async () => {
      const r1 = await appA.locks.acquire('rw:2', { mode: 'read', ttl: 60_000 });
      const r2 = await appB.locks.acquire('rw:2', { mode: 'read', ttl: 60_000 });
      let written = false;
      const writer = appB.locks.acquire('rw:2', { wait: 30_000 }).then((lock) => {
        written = true;
        return lock;
      });
      // Once the writer has found the readers, it is waiting: a new reader may not join them.
      await eventually(async () => (await appA.locks.tryAcquire('rw:2', { mode: 'read' }).then(async (lock) => {
        await lock?.release();
        return lock === null;
      })), 10_000, 'new readers to be held back by the waiting writer');
      await r1.release();
      expect(written).toBe(false); // one reader is still in
      await r2.release();
      const lock = await writer;
      await lock.release();
      await (await appA.locks.acquire('rw:2', { mode: 'read' })).release();
    });

    it('lets a writer read in the same call chain, and refuses to upgrade a read to a write', async () => {
      await appA.locks.withLock('rw:3', async (write) => {
        const read = await appA.locks.acquire('rw:3', { mode: 'read' });
        expect(read.token).toBe(write.token);
        await read.release();
        expect(await appB.locks.tryAcquire('rw:3', { mode: 'read' })).toBeNull();
      });
      await appA.locks.withLock('rw:3', async () => {
        await expect(appA.locks.acquire('rw:3')).rejects.toBeInstanceOf(LockConfigError);
        await expect(appA.locks.acquire('rw:3')).rejects.toThrow(/cannot be upgraded/);
      }, { mode: 'read' });
      expect(await appB.locks.isLocked('rw:3')).toBe(false);
    });

    it('keeps a fair writer out while readers hold the key', async () => {
      const reader = await appA.locks.acquire('rw:4', { mode: 'read' });
      expect(await appB.locks.tryAcquire('rw:4', { fair: true })).toBeNull();
      await reader.release();
      await (await appB.locks.acquire('rw:4', { fair: true })).release();
    });

    it('renews a read lock while held', async () => {
      const reader = await appA.locks.acquire('rw:5', { mode: 'read', ttl: 600 });
      const sent = appA.locks.leaseStats.renewalsSent;
      await eventually(() => appA.locks.leaseStats.renewalsSent >= sent + 3, 20_000, 'renewals');
      expect(reader.signal.aborted).toBe(false);
      expect(await appB.locks.tryAcquire('rw:5')).toBeNull();
      await reader.release();
      await (await appB.locks.acquire('rw:5')).release();
    });
  });
}

describe('read-write locks', () => {
  let server: RedisServer;
  beforeAll(async () => {
    server = await RedisServer.start();
  });
  afterAll(() => stopAllRedisServers());

  describeReadWrite('Redis', () => ({ redis: server.url }));
  describeReadWrite("store: 'memory'", () => ({ store: 'memory', prefix: 'rw-memory:' }));
});

import type { Cluster } from 'ioredis';
import { clusterSlot } from '../lib/stores/cluster-slot.js';
import { RedisCluster } from './support/redis-cluster.js';
import { stopAllRedisServers } from './support/redis-server.js';
import { describeCoreBehaviour } from './support/core-behaviour.js';
import { eventually, startLockApp, type LockApp } from './support/lock-app.js';
import { ownerOf } from './support/lock-value.js';

describe('Redis Cluster', () => {
  let cluster: RedisCluster;
  let raw: Cluster;

  beforeAll(async () => {
    cluster = await RedisCluster.start({ masters: 3 });
    raw = cluster.client();
  }, 60_000);
  afterAll(async () => {
    await raw?.quit();
    await cluster?.stop();
    await stopAllRedisServers();
  });

  describeCoreBehaviour('a 3-master Cluster given as { cluster: nodes }', () => ({ redis: { cluster: cluster.startupNodes } }));

  it('computes the same slot as Redis for lock keys, hash tags and odd characters', async () => {
    const keys = ['lock:{order:42}', 'lock:{order:42}:fence', 'plain', 'lock:{{user1}:a}', 'lock:{}x', 'lock:{é✓}', 'a{b}c{d}'];
    for (const key of keys) expect(clusterSlot(key)).toBe(Number(await raw.cluster('KEYSLOT', key)));
    expect(clusterSlot('lock:{order:42}')).toBe(clusterSlot('lock:{order:42}:fence'));
  });

  describe('with a Cluster client passed in', () => {
    let client: Cluster;
    let clientB: Cluster;
    let appA: LockApp;
    let appB: LockApp;
    beforeAll(async () => {
      client = cluster.client();
      clientB = cluster.client();
      appA = await startLockApp({ redis: client, wait: 0 });
      appB = await startLockApp({ redis: clientB, wait: 0 });
    });
    afterAll(async () => {
      await appA?.close();
      await appB?.close();
      expect(client.status).toBe('ready'); // ours to close, not the module's
      await client.quit();
      await clientB.quit();
    });

    it('takes keys in different slots on different masters all or nothing, and rolls back on a busy slot', async () => {
      const keys = Array.from({ length: 12 }, (_, i) => `multi-slot:${i}`);
      const slots = new Set(keys.map((key) => clusterSlot(`lock:{${key}}`)));
      expect(slots.size).toBeGreaterThan(3);
      const masters = new Set(keys.map((key) => (raw as unknown as { slots: string[][] }).slots[clusterSlot(`lock:{${key}}`)]?.[0]));
      expect(masters.size).toBeGreaterThan(1);

      const blocker = await appB.locks.acquire(keys[7]);
      expect(await appA.locks.tryAcquire(keys)).toBeNull();
      // Rolled back: none of the other keys stayed taken.
      for (const key of keys) if (key !== keys[7]) expect(await raw.exists(`lock:{${key}}`)).toBe(0);
      await blocker.release();

      const all = await appA.locks.acquire(keys);
      for (const key of keys) expect(ownerOf(await raw.get(`lock:{${key}}`))).toBe(all.token);
      await all.release();
      for (const key of keys) expect(await raw.exists(`lock:{${key}}`)).toBe(0);
    });

    it('two callers taking overlapping multi-slot key sets in opposite orders both finish (no deadlock)', async () => {
      const keys = Array.from({ length: 6 }, (_, i) => `overlap:${i}`);
      const reversed = [...keys].reverse();
      let done = 0;
      await Promise.all(
        Array.from({ length: 10 }, (_, i) =>
          (i % 2 ? appA : appB).locks
            .withLock(i % 2 ? keys : reversed, async () => {
              await new Promise((resolve) => setImmediate(resolve));
            }, { wait: 30_000 })
            .then(() => (done += 1)),
        ),
      );
      expect(done).toBe(10);
    });

    it('runs semaphores and read-write locks on a Cluster, across slots', async () => {
      const keys = ['sem-cluster:a', 'sem-cluster:b', 'sem-cluster:c'];
      const first = await appA.locks.acquire(keys, { permits: 2 });
      const second = await appB.locks.acquire(keys, { permits: 2 });
      expect(await appB.locks.tryAcquire(keys, { permits: 2 })).toBeNull();
      await first.release();
      await second.release();

      const reader = await appA.locks.acquire('rw-cluster', { mode: 'read' });
      const other = await appB.locks.acquire('rw-cluster', { mode: 'read' });
      expect(await appB.locks.tryAcquire('rw-cluster')).toBeNull();
      await reader.release();
      await other.release();
      await (await appB.locks.acquire('rw-cluster')).release();
    });

    it('works in fair mode on a Cluster (queue keys share the lock key slot)', async () => {
      const held = await appA.locks.acquire('fair-cluster', { fair: true });
      const waiting = appB.locks.acquire('fair-cluster', { fair: true, wait: 20_000 });
      await eventually(async () => (await raw.llen('lock:{fair-cluster}:queue')) === 1, 10_000, 'the waiter to queue');
      await held.release();
      const next = await waiting;
      expect(ownerOf(await raw.get('lock:{fair-cluster}'))).toBe(next.token);
      await next.release();
    });
  });
});

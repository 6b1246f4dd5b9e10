/**
 * Bounded fences (issue 15): shared counters instead of one per key, fences kept with each hold,
 * and the migration from the per-key counters of 0.1.
 */
import { Redis } from 'ioredis';
import { type LockModuleOptions } from '../lib/index.js';
import { newOwnerToken } from '../lib/owner-token.js';
import { clusterSlot, SlotCounters } from '../lib/stores/cluster-slot.js';
import { lockKeyOf, RedisLockStore } from '../lib/stores/redis.store.js';
import { RedisCluster } from './support/redis-cluster.js';
import { RedisServer, stopAllRedisServers } from './support/redis-server.js';
import { startLockApp, type LockApp } from './support/lock-app.js';

afterAll(async () => {
  await stopAllRedisServers();
});

describe('bounded fences on a single Redis', () => {
  let server: RedisServer;
  let raw: Redis;
  let app: LockApp;
  const options = (): LockModuleOptions => ({ redis: { host: server.host, port: server.port }, wait: 0 });

  beforeAll(async () => {
    server = await RedisServer.start();
    raw = server.client();
    app = await startLockApp(options());
  });
  afterAll(async () => {
    await app?.close();
    await raw?.quit();
  });

  it('distinct keys in every mode leave only the shared counter behind, and fences keep growing per key', async () => {
    await raw.flushall();
    let last = 0;
    for (let i = 0; i < 50; i++) {
      for (const options of [{}, { permits: 2 }, { mode: 'read' as const }, { fair: true }]) {
        const lock = await app.locks.acquire(`distinct:${i}`, options);
        expect(lock.fence).toBeGreaterThan(last);
        last = lock.fence;
        await lock.release();
      }
    }
    // Instance records (lock:instance:<id>) belong to the running apps, not to any lock.
    expect((await raw.keys('*')).filter((key) => !key.startsWith('lock:instance:'))).toEqual(['lock:fences']);
  });

  it('an exclusive attempt re-sent after a lost reply answers with its own fence, not the counter now', async () => {
    const store = RedisLockStore.create({ host: server.host, port: server.port }, { prefix: 'lock:' });
    try {
      const token = newOwnerToken();
      const first = await store.acquire(['resent'], token, 10_000, { announceFor: 0 });
      // Other keys move the shared counter meanwhile.
      for (let i = 0; i < 3; i++) await (await app.locks.acquire(`resent:other:${i}`)).release();
      const again = await store.acquire(['resent'], token, 10_000, { announceFor: 0 });
      expect(first.acquired && again.acquired).toBe(true);
      if (first.acquired && again.acquired) expect(again.fences).toEqual(first.fences);
      expect(await store.release(['resent'], token)).toBe(1);
    } finally {
      await store.close();
    }
  });

  it('owner checks compare the token and its separator exactly', async () => {
    const store = RedisLockStore.create({ host: server.host, port: server.port }, { prefix: 'lock:' });
    try {
      const token = newOwnerToken();
      const outcome = await store.acquire(['exact'], token, 10_000, { announceFor: 0 });
      expect(outcome.acquired).toBe(true);
      // A prefix of the token, or the token without its separator, is not the owner.
      expect(await store.release(['exact'], token.slice(0, -1))).toBe(0);
      expect(await store.extend([{ keys: ['exact'], token: token.slice(0, -1), ttl: 10_000 }])).toEqual([false]);
      expect(await raw.get('lock:{exact}')).toMatch(new RegExp(`^${token}:\\d+$`));
      expect(await store.release(['exact'], token)).toBe(1);
    } finally {
      await store.close();
    }
  });

  it('0.1 layout: a legacy per-key counter is never shadowed, and is bumped so 0.1 instances stay above', async () => {
    await raw.set('lock:{legacy}:fence', 1_000);
    const first = await app.locks.acquire('legacy');
    expect(first.fence).toBe(1_001);
    expect(Number(await raw.get('lock:{legacy}:fence'))).toBe(1_001);
    expect(Number(await raw.get('lock:fences'))).toBeGreaterThanOrEqual(1_001);
    await first.release();
    // A 0.1 instance INCRs its counter: it is above everything handed out here.
    expect(await raw.incr('lock:{legacy}:fence')).toBe(1_002);
    for (const options of [{}, { permits: 3 }, { mode: 'read' as const }, { fair: true }]) {
      const before = Number(await raw.get('lock:{legacy}:fence'));
      const lock = await app.locks.acquire('legacy', options);
      expect(lock.fence).toBeGreaterThan(before);
      expect(Number(await raw.get('lock:{legacy}:fence'))).toBe(lock.fence);
      await lock.release();
    }
    // A lock held by a 0.1 instance (a plain token) is busy here, and never released from here.
    await raw.set('lock:{old-holder}', 'a'.repeat(32), 'PX', 10_000);
    expect(await app.locks.tryAcquire('old-holder')).toBeNull();
    expect(await raw.get('lock:{old-holder}')).toBe('a'.repeat(32));
  });

  it('retiring a legacy counter as the README says keeps fences growing', async () => {
    await raw.set('lock:{retire}:fence', 5_000_000);
    await raw.eval(
      "local c = tonumber(redis.call('GET', KEYS[1]) or '0') local v = tonumber(redis.call('GET', KEYS[2]) or '0') if v > c then redis.call('SET', KEYS[1], v) end return redis.call('DEL', KEYS[2])",
      2,
      'lock:fences',
      'lock:{retire}:fence',
    );
    const lock = await app.locks.acquire('retire');
    expect(lock.fence).toBeGreaterThan(5_000_000);
    await lock.release();
  });
});

describe('bounded fences on a Cluster', () => {
  let cluster: RedisCluster;

  beforeAll(async () => {
    cluster = await RedisCluster.start();
  }, 60_000);
  afterAll(async () => {
    await cluster?.stop();
  });

  it('the slot counter of every key is in the key\'s slot (Redis agrees), and only counters are left', async () => {
    const raw = cluster.client();
    const app = await startLockApp({ redis: { cluster: cluster.startupNodes }, wait: 0 });
    try {
      const counters = new SlotCounters('lock:');
      const keys = ['}order:42', 'order:1', 'a', '{}', ...Array.from({ length: 30 }, (_, i) => `c:${i}`)];
      for (const key of keys) {
        const lockKey = lockKeyOf('lock:', key);
        const name = counters.nameFor(clusterSlot(lockKey)) as string;
        expect(Number(await raw.cluster('KEYSLOT', name))).toBe(Number(await raw.cluster('KEYSLOT', lockKey)));
        const lock = await app.locks.acquire(key);
        await lock.release();
      }
      const left = (await Promise.all(raw.nodes('master').map((node) => node.keys('lock:*')))).flat().filter((key) => !key.startsWith('lock:instance:'));
      expect(left.length).toBeGreaterThan(0);
      expect(left.every((key) => key.startsWith('lock:fences{'))).toBe(true);
    } finally {
      await app.close();
      await raw.quit();
    }
  });
});

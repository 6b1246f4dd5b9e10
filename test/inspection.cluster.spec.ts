/** Inspection and the CLI on a 3-master Redis Cluster: SCAN must visit every master. */
import type { Cluster } from 'ioredis';
import { clusterSlot } from '../lib/stores/cluster-slot.js';
import { lockKeyOf } from '../lib/stores/redis.store.js';
import type { LockInfo } from '../lib/index.js';
import { RedisCluster } from './support/redis-cluster.js';
import { stopAllRedisServers } from './support/redis-server.js';
import { startLockApp, type LockApp } from './support/lock-app.js';
import { runCli } from './support/cli.js';

describe('inspection on a Redis Cluster', () => {
  let cluster: RedisCluster;
  let raw: Cluster;
  let appA: LockApp;
  let appB: LockApp;

  beforeAll(async () => {
    cluster = await RedisCluster.start({ masters: 3 });
    raw = cluster.client();
    appA = await startLockApp({ redis: { cluster: cluster.startupNodes }, appName: 'cl-a' });
    appB = await startLockApp({ redis: { cluster: cluster.startupNodes }, appName: 'cl-b' });
  }, 60_000);
  afterAll(async () => {
    await appA?.close();
    await appB?.close();
    await raw?.quit();
    await cluster?.stop();
    await stopAllRedisServers();
  });

  it('lists held keys from every master with their holder, and inspects permits and readers', async () => {
    const keys = Array.from({ length: 12 }, (_, i) => `cl:${i}`);
    const held = await Promise.all(keys.map((key, i) => (i % 2 ? appA : appB).locks.acquire(key)));
    await raw.exists(lockKeyOf('lock:', keys[0])); // the client knows the slot map from here
    const masters = new Set(keys.map((key) => (raw as unknown as { slots: string[][] }).slots[clusterSlot(lockKeyOf('lock:', key))]?.[0]));
    expect(masters.size).toBe(3);
    const sem = await appA.locks.acquire('cl:sem', { permits: 2 });
    const readers = await Promise.all([appA, appB].map((app) => app.locks.acquire('cl:doc', { mode: 'read' })));

    const listed = await appB.locks.list({ match: 'cl:*' });
    expect(listed.map((info) => info.key).sort()).toEqual([...keys, 'cl:sem', 'cl:doc'].sort());
    for (const [i, key] of keys.entries()) {
      const info = listed.find((item) => item.key === key) as LockInfo;
      expect(info.holders[0].instance?.id).toBe((i % 2 ? appA : appB).locks.instanceId);
      expect(info.fence).toBe(held[i].fence);
    }
    expect(await appB.locks.inspect('cl:sem')).toMatchObject({ mode: 'permits', permits: 2, holders: [{ instance: { app: 'cl-a' } }] });
    const doc = await appA.locks.inspect('cl:doc');
    expect(doc.mode).toBe('read');
    expect(doc.holders.map((holder) => holder.instance?.app).sort()).toEqual(['cl-a', 'cl-b']);

    const nodes = cluster.startupNodes.map((node) => `${node.host}:${node.port}`).join(',');
    const cli = await runCli(['--cluster', nodes, 'list', 'cl:*', '--json']);
    expect(cli.code).toBe(0);
    expect((JSON.parse(cli.stdout) as LockInfo[]).map((info) => info.key)).toEqual([...keys, 'cl:sem', 'cl:doc'].sort());
    for (const lock of [...held, sem, ...readers]) expect(cli.stdout.includes(lock.token.slice(-32))).toBe(false);

    const released = await runCli(['--cluster', nodes, 'release', 'cl:3', '--force', '--yes']);
    expect(released.code).toBe(0);
    const next = await appB.locks.acquire('cl:3', { wait: 10_000 });
    expect(next.fence).toBe(held[3].fence + 2);
    await Promise.all([...held, sem, ...readers, next].map((lock) => lock.release()));
    expect(await appA.locks.list({ match: 'cl:*' })).toEqual([]);
  });
});

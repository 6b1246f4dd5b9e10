import fs from 'node:fs';
import { Redis, type Cluster } from 'ioredis';
import { RedisCluster } from './support/redis-cluster.js';
import { RedisSentinelSet } from './support/redis-sentinel.js';
import { stopAllRedisServers } from './support/redis-server.js';

const clients = new Set<Redis | Cluster>();
function track<T extends Redis | Cluster>(client: T): T {
  clients.add(client);
  return client;
}

async function closeClient(client: Redis | Cluster): Promise<void> {
  clients.delete(client);
  if (client.status === 'ready') {
    await client.quit().catch(() => client.disconnect());
  } else if (client.status !== 'end') {
    client.disconnect();
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    expect((err as NodeJS.ErrnoException).code).toBe('ESRCH');
    return false;
  }
}

function infoField(info: string, field: string): string | undefined {
  return new RegExp(`^${field}:(.*?)\\r?$`, 'm').exec(info)?.[1];
}

/** Retries `attempt` until it resolves (returning its value) or `ms` pass (rethrowing the last error). */
async function eventually<T>(ms: number, attempt: () => Promise<T>): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    try {
      return await attempt();
    } catch (err) {
      if (Date.now() >= deadline) throw err;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }
}

afterAll(async () => {
  await Promise.allSettled([...clients].map(closeClient));
  await stopAllRedisServers();
});

describe('RedisCluster', () => {
  let cluster: RedisCluster;

  beforeAll(async () => {
    cluster = await RedisCluster.start();
  });

  afterAll(async () => {
    await cluster?.stop();
  });

  it('starts 3 cluster-enabled nodes on free ports whose bus ports (port + 10000) are valid', () => {
    expect(cluster.nodes).toHaveLength(3);
    const ports = cluster.nodes.map((n) => n.port);
    expect(new Set(ports).size).toBe(3);
    for (const port of ports) {
      expect(port).not.toBe(6379);
      expect(port + 10_000).toBeLessThan(65_536);
    }
    expect(cluster.startupNodes).toEqual(ports.map((port) => ({ host: '127.0.0.1', port })));
  });

  it('every node is a master that owns slots, in a healthy cluster of all 3 nodes', async () => {
    const allSlots = new Set<number>();
    for (const node of cluster.nodes) {
      const redis = track(node.client());
      try {
        const clusterInfo = String(await redis.cluster('INFO'));
        expect(infoField(clusterInfo, 'cluster_state')).toBe('ok');
        expect(infoField(clusterInfo, 'cluster_known_nodes')).toBe('3');
        expect(infoField(await redis.info('replication'), 'role')).toBe('master');

        const myself = String(await redis.cluster('NODES')).split('\n').find((line: string) => line.includes('myself'));
        expect(myself).toBeDefined();
        const [, address, flags, , , , , , ...slotRanges] = myself!.trim().split(' ');
        expect(address).toMatch(new RegExp(`^127\\.0\\.0\\.1:${node.port}@${node.port + 10_000}`));
        expect(flags!.split(',')).toContain('master');
        expect(slotRanges.length).toBeGreaterThan(0);
        for (const range of slotRanges) {
          const [start, end = start] = range.split('-').map(Number);
          for (let slot = start!; slot <= end!; slot++) allSlots.add(slot);
        }
        // The cluster config file lives in the node's own temp dir.
        expect(fs.existsSync(`${node.dataDir}/nodes.conf`)).toBe(true);
      } finally {
        await closeClient(redis);
      }
    }
    expect(allSlots.size).toBe(16_384);
  });

  it('one Cluster client serves keys in different slots on different nodes', async () => {
    const redis = track(cluster.client());
    try {
      const keys = Array.from({ length: 12 }, (_, i) => `topology:cluster:${i}`);
      for (const key of keys) await redis.set(key, `value-of-${key}`);
      for (const key of keys) expect(await redis.get(key)).toBe(`value-of-${key}`);

      const slots = new Set<number>();
      for (const key of keys) slots.add(Number(await redis.call('CLUSTER', 'KEYSLOT', key)));
      expect(slots.size).toBeGreaterThanOrEqual(2);

      // The keys really are spread over more than one node.
      const holders = new Set<number>();
      for (const node of cluster.nodes) {
        const direct = track(node.client());
        try {
          for (const key of keys) {
            const slot = Number(await direct.call('CLUSTER', 'KEYSLOT', key));
            if (Number(await direct.call('CLUSTER', 'COUNTKEYSINSLOT', slot)) > 0) holders.add(node.port);
          }
        } finally {
          await closeClient(direct);
        }
      }
      expect(holders.size).toBeGreaterThanOrEqual(2);
      for (const key of keys) await redis.del(key); // one by one: a multi-key DEL across slots is CROSSSLOT
    } finally {
      await closeClient(redis);
    }
  });

  it('stop() terminates every node process and removes their temp dirs (idempotently)', async () => {
    const pids = cluster.nodes.map((n) => n.pid);
    const dirs = cluster.nodes.map((n) => n.dataDir);
    expect(pids.every((pid) => typeof pid === 'number')).toBe(true);
    expect(pids.every((pid) => isAlive(pid!))).toBe(true);

    await cluster.stop();
    for (const pid of pids) expect(isAlive(pid!)).toBe(false);
    for (const dir of dirs) expect(fs.existsSync(dir!)).toBe(false);
    expect(cluster.nodes.every((n) => !n.running)).toBe(true);
    await cluster.stop();
  });

  it('rejects fewer than 3 masters', async () => {
    await expect(RedisCluster.start({ masters: 2 })).rejects.toThrow(RangeError);
  });
});

describe('RedisSentinelSet', () => {
  let set: RedisSentinelSet;

  beforeAll(async () => {
    set = await RedisSentinelSet.start();
  });

  afterAll(async () => {
    await set?.stop();
  });

  it('starts a master, one replica and three sentinels that all know each other', async () => {
    expect(set.masterName).toBe('mymaster');
    expect(set.servers).toHaveLength(2);
    expect(set.sentinels).toHaveLength(3);
    const [master, replica] = set.servers;
    expect(await set.currentMaster()).toEqual({ host: '127.0.0.1', port: master!.port });
    expect(set.sentinelAddresses).toEqual(set.sentinels.map((s) => ({ host: '127.0.0.1', port: s.port })));

    const replicaClient = track(replica!.client());
    try {
      const info = await replicaClient.info('replication');
      expect(infoField(info, 'role')).toBe('slave');
      expect(infoField(info, 'master_port')).toBe(String(master!.port));
      expect(infoField(info, 'master_link_status')).toBe('up');
    } finally {
      await closeClient(replicaClient);
    }

    for (const sentinel of set.sentinels) {
      const redis = track(new Redis({ host: '127.0.0.1', port: sentinel.port, protocol: 2 }));
      try {
        const masterFields = (await redis.call('SENTINEL', 'MASTER', 'mymaster')) as string[];
        const asMap = new Map<string, string>();
        for (let i = 0; i + 1 < masterFields.length; i += 2) asMap.set(masterFields[i]!, masterFields[i + 1]!);
        expect(asMap.get('port')).toBe(String(master!.port));
        expect(asMap.get('quorum')).toBe('2');
        expect(asMap.get('num-slaves')).toBe('1');
        expect(asMap.get('num-other-sentinels')).toBe('2');
      } finally {
        await closeClient(redis);
      }
    }
  });

  it('an ioredis sentinel client works, and keeps working (eventually) after failover() switches the master', async () => {
    const redis = track(new Redis(set.redisOptions()));
    try {
      await redis.set('topology:sentinel:before', 'one');
      expect(await redis.get('topology:sentinel:before')).toBe('one');
      expect(Number(infoField(await redis.info('server'), 'tcp_port'))).toBe(set.servers[0]!.port);

      const { from, to } = await set.failover();
      expect(from).toBe(set.servers[0]!.port);
      expect(to).toBe(set.servers[1]!.port);
      expect((await set.currentMaster()).port).toBe(to);

      // The data written before the failover was replicated to the new master.
      await eventually(30_000, async () => {
        expect(Number(infoField(await redis.info('server'), 'tcp_port'))).toBe(to);
        await redis.set('topology:sentinel:after', 'two');
        expect(await redis.get('topology:sentinel:after')).toBe('two');
      });
      expect(await redis.get('topology:sentinel:before')).toBe('one');
      expect(infoField(await redis.info('replication'), 'role')).toBe('master');

      // And back again: failover() leaves the set ready for another failover().
      const back = await set.failover();
      expect(back).toEqual({ from: to, to: from });
      await eventually(30_000, async () => {
        expect(Number(infoField(await redis.info('server'), 'tcp_port'))).toBe(from);
        await redis.set('topology:sentinel:back', 'three');
        expect(await redis.get('topology:sentinel:back')).toBe('three');
      });
    } finally {
      await closeClient(redis);
    }
  });

  it('stop() terminates every data node and sentinel process', async () => {
    const processes = [...set.servers, ...set.sentinels];
    const pids = processes.map((p) => p.pid);
    expect(pids.every((pid) => typeof pid === 'number' && isAlive(pid))).toBe(true);

    await set.stop();
    for (const pid of pids) expect(isAlive(pid!)).toBe(false);
    expect(processes.every((p) => !p.running && p.dataDir === undefined)).toBe(true);
    await set.stop();
  });

  it('supports one sentinel (quorum 1), several replicas and a custom master name', async () => {
    const small = await RedisSentinelSet.start({ sentinels: 1, replicas: 2, masterName: 'other-master' });
    try {
      expect(small.servers).toHaveLength(3);
      expect(small.sentinels).toHaveLength(1);
      const redis = track(new Redis({ host: '127.0.0.1', port: small.sentinels[0]!.port, protocol: 2 }));
      try {
        const fields = (await redis.call('SENTINEL', 'MASTER', 'other-master')) as string[];
        expect(fields[fields.indexOf('quorum') + 1]).toBe('1');
        expect(fields[fields.indexOf('num-slaves') + 1]).toBe('2');
        const config = fs.readFileSync(small.sentinels[0]!.configPath!, 'utf8');
        expect(config).toContain('sentinel monitor other-master 127.0.0.1');
      } finally {
        await closeClient(redis);
      }
      const client = track(new Redis(small.redisOptions()));
      try {
        await client.set('topology:sentinel:small', 'ok');
        expect(await client.get('topology:sentinel:small')).toBe('ok');
      } finally {
        await closeClient(client);
      }
    } finally {
      await small.stop();
    }
  });
});

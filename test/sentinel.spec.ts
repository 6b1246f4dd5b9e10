import { Redis } from 'ioredis';
import { LockLostError, LockUnavailableError } from '../lib/index.js';
import { RedisSentinelSet } from './support/redis-sentinel.js';
import { stopAllRedisServers } from './support/redis-server.js';
import { describeCoreBehaviour } from './support/core-behaviour.js';
import { aborted, eventually, startLockApp, type LockApp } from './support/lock-app.js';
import { ownerOf } from './support/lock-value.js';

describe('Sentinel', () => {
  let set: RedisSentinelSet;

  beforeAll(async () => {
    set = await RedisSentinelSet.start({ replicas: 1, sentinels: 3 });
  }, 60_000);
  afterAll(async () => {
    await set?.stop();
    await stopAllRedisServers();
  });

  describeCoreBehaviour('a master + replica behind 3 sentinels', () => ({ redis: set.redisOptions() }));

  describe('failover and replicas', () => {
    let app: LockApp;
    let other: LockApp;
    const masterClient = async () => {
      const master = await set.currentMaster();
      return new Redis({ host: master.host, port: master.port, maxRetriesPerRequest: 1, lazyConnect: false });
    };

    beforeAll(async () => {
      // failoverDetector: follow the sentinels' switch at once instead of when the old master is demoted.
      app = await startLockApp({ redis: set.redisOptions({ failoverDetector: true }), wait: 0 });
      other = await startLockApp({ redis: set.redisOptions({ failoverDetector: true }), wait: 0 });
    });
    afterAll(async () => {
      await app?.close();
      await other?.close();
    });

    it('waitForReplicas: returns only once a replica has the lock, and fails cleanly when too few replicas exist', async () => {
      const safe = await startLockApp({ redis: set.redisOptions(), waitForReplicas: 1, wait: 0 });
      const lock = await safe.locks.acquire('replicated');
      // WAIT returned: the replica already has it.
      const master = await set.currentMaster();
      const replica = set.servers.find((server) => server.port !== master.port)?.client();
      expect(ownerOf(await replica?.get('lock:{replicated}'))).toBe(lock.token);
      await replica?.quit();
      await lock.release();
      await safe.close();

      const greedy = await startLockApp({ redis: set.redisOptions(), waitForReplicas: 2, replicaTimeout: 200, wait: 0 });
      const error = await greedy.locks.acquire('replicated:2').catch((e: unknown) => e);
      expect(error).toBeInstanceOf(LockUnavailableError);
      // Redis answered: the message says what happened, not that Redis could not be reached.
      expect((error as Error).message).toBe(
        'Lock "replicated:2" was not taken: Redis granted it, but only 1 of 2 replicas acknowledged the write within ' +
          'replicaTimeout=200 ms (waitForReplicas: 2), so it was given back; check that enough replicas are connected ' +
          'and in sync (INFO replication), or lower "waitForReplicas" / raise "replicaTimeout"',
      );
      expect((error as Error).message).not.toMatch(/could not be reached|check the connection/);
      expect(String((error as Error).cause)).toContain('only 1 of 2 replicas acknowledged');
      const client = await masterClient();
      expect(await client.exists('lock:{replicated:2}')).toBe(0); // the partial lock was given back
      await client.quit();
      await greedy.close();
    });

    it('keeps working across a failover, and never holds a lock silently that the new master lost', async () => {
      const held = await app.locks.acquire('failover:held', { ttl: 3_000 });
      const dropped = await app.locks.acquire('failover:dropped', { ttl: 3_000 });
      const before = await set.currentMaster();
      await set.failover();
      const client = await masterClient();
      expect(client.options.port).not.toBe(before.port);

      // The library follows the new master: a new lock lands there.
      await eventually(
        async () => {
          const lock = await other.locks.tryAcquire('failover:new').catch(() => null);
          const onNewMaster = lock !== null && (ownerOf(await client.get('lock:{failover:new}'))) === lock.token;
          await lock?.release();
          return onNewMaster;
        },
        30_000,
        'a lock taken on the new master',
      );

      // A lock the new master does not have (a write that never replicated): reported, not silent.
      await client.del('lock:{failover:dropped}');
      expect(await aborted(dropped.signal)).toBeInstanceOf(LockLostError);

      // The other lock is either still ours on the new master, or reported lost (a failover can
      // lose it: until the sentinels demote the old master, renewals may have gone there).
      const renewals = app.locks.leaseStats.renewalsSent;
      await eventually(() => app.locks.leaseStats.renewalsSent >= renewals + 2 || held.signal.aborted, 30_000, 'renewals');
      if (held.signal.aborted) {
        expect(held.signal.reason).toBeInstanceOf(LockLostError);
      } else {
        expect(ownerOf(await client.get('lock:{failover:held}'))).toBe(held.token);
        expect(await other.locks.tryAcquire('failover:held')).toBeNull();
      }
      await held.release();
      await dropped.release();
      await client.quit();
    });
  });
});

import { createHash } from 'node:crypto';
import { Redis, type RedisOptions } from 'ioredis';
import { LockNotAcquiredError, LockUnavailableError } from '../lib/index.js';
import { RedisServer, stopAllRedisServers } from './support/redis-server.js';
import { aborted, eventually, startLockApp, type LockApp } from './support/lock-app.js';
import { ownerOf } from './support/lock-value.js';
import { ACQUIRE_SCRIPT, RAISE_FENCES_SCRIPT, RELEASE_ONE_SCRIPT } from '../lib/stores/redis-scripts.js';
import { RedlockStore } from '../lib/stores/redlock.store.js';
import { newOwnerToken } from '../lib/owner-token.js';
import { TcpProxy } from './support/tcp-proxy.js';

describe('Redlock over three independent masters', () => {
  let masters: RedisServer[];
  let clients: Redis[];
  let appA: LockApp;
  let appB: LockApp;
  const holders = async (key: string) => (await Promise.all(clients.map((c) => c.get(`lock:{${key}}`).then(ownerOf)))).filter(Boolean);

  beforeAll(async () => {
    masters = await RedisServer.startMany(3);
    clients = masters.map((m) => m.client({ maxRetriesPerRequest: 1 }));
    const redlock = masters.map((m) => ({ host: m.host, port: m.port, maxRetriesPerRequest: 1 }));
    appA = await startLockApp({ redlock, wait: 0 });
    appB = await startLockApp({ redlock, wait: 0 });
  });
  afterAll(async () => {
    await appA?.close();
    await appB?.close();
    await Promise.all(clients.map((c) => c.quit().catch(() => undefined)));
    await stopAllRedisServers();
  });

  it('takes the lock on every master and releases it everywhere', async () => {
    const lock = await appA.locks.acquire('rl:1');
    // Granted at quorum; the last master's write may still be on its way on a loaded machine.
    expect((await holders('rl:1')).length).toBeGreaterThanOrEqual(2);
    await eventually(async () => (await holders('rl:1')).length === 3, 10_000, 'the third master to have the lock');
    expect(await holders('rl:1')).toEqual([lock.token, lock.token, lock.token]);
    expect(await appB.locks.isLocked('rl:1')).toBe(true);
    expect(await appB.locks.tryAcquire('rl:1')).toBeNull();
    await lock.release();
    // Done at quorum; the last master's release may still be on its way.
    await eventually(async () => (await holders('rl:1')).length === 0, 10_000, 'every master to release rl:1');
  });

  it('excludes a second app, hands over on release, and keeps fences strictly increasing', async () => {
    const first = await appA.locks.acquire('rl:2');
    const waiting = appB.locks.acquire('rl:2', { wait: 20_000 });
    await first.release();
    const second = await waiting;
    expect(second.fence).toBeGreaterThan(first.fence);
    // The shared counter of a quorum of masters is at the fence handed out: every later quorum
    // overlaps it, so counts above it. (Not necessarily the third: B's attempt there can arrive
    // before A's release, which is done at quorum, and answer busy.) No per-key counter is left.
    const raised = async () => (await Promise.all(clients.map((c) => c.get('lock:fences')))).filter((v) => Number(v) >= second.fence).length;
    expect(await raised()).toBeGreaterThanOrEqual(2);
    for (const c of clients) expect(await c.exists('lock:{rl:2}:fence')).toBe(0);
    await second.release();
  });

  it('raises the fence counters only when the granting masters disagree on the fence', async () => {
    const raiseSha = createHash('sha1').update(RAISE_FENCES_SCRIPT).digest('hex');
    // SLOWLOG with a threshold of 0 records every command a master runs, with its arguments.
    const raisesRun = async () => {
      const logs = await Promise.all(clients.map((c) => c.slowlog('GET', 100_000) as Promise<Array<[number, number, number, string[]]>>));
      // ioredis sends a script's first call on a connection as EVAL, later ones as EVALSHA; SLOWLOG
      // keeps only the first 128 characters of an argument.
      const isRaise = ([command, script]: string[]) =>
        (command.toLowerCase() === 'evalsha' && script === raiseSha) ||
        (command.toLowerCase() === 'eval' && script.startsWith(RAISE_FENCES_SCRIPT.slice(0, 100)));
      return logs.flat().filter((entry) => isRaise(entry[3])).length;
    };
    const counters = async () => (await Promise.all(clients.map((c) => c.get('lock:fences')))).map(Number);
    await Promise.all(clients.map((c) => c.config('SET', 'slowlog-log-slower-than', '0')));
    await Promise.all(clients.map((c) => c.config('SET', 'slowlog-max-len', '100000')));
    try {
      // Counters in step (every master saw the same acquisitions): the granting masters answer the
      // same fence, which each of them already counts, so nothing is sent to raise them.
      const base = Math.max(...(await counters())) + 100;
      await Promise.all(clients.map((c) => c.set('lock:fences', base)));
      await Promise.all(clients.map((c) => c.slowlog('RESET')));
      const inStep = await appA.locks.acquire('rl:raise');
      expect(inStep.fence).toBe(base + 1);
      await inStep.release();
      expect(await raisesRun()).toBe(0);

      // Counters apart: any two masters answer different fences. The lock's fence is the largest,
      // and a quorum of granting masters is raised to it before acquire returns.
      await clients[0].set('lock:fences', base + 1_000);
      await clients[1].set('lock:fences', base + 2_000);
      const apart = await appA.locks.acquire('rl:raise');
      expect(apart.fence).toBeGreaterThan(base + 1_000);
      expect((await counters()).filter((counter) => counter >= apart.fence).length).toBeGreaterThanOrEqual(2);
      expect(await raisesRun()).toBeGreaterThanOrEqual(2);
      await apart.release();
      const next = await appB.locks.acquire('rl:raise');
      expect(next.fence).toBeGreaterThan(apart.fence);
      await next.release();
    } finally {
      await Promise.all(clients.map((c) => c.config('SET', 'slowlog-log-slower-than', '10000')));
    }
  });

  it('takes several keys all or nothing', async () => {
    const b = await appB.locks.acquire('rl:b');
    expect(await appA.locks.tryAcquire(['rl:a', 'rl:b'])).toBeNull();
    // A master that B's write had not reached yet may have granted A both keys; A's give-back
    // there is under way, not awaited.
    await eventually(async () => (await holders('rl:a')).length === 0, 10_000, 'no master to hold rl:a');
    await b.release();
    const both = await appA.locks.acquire(['rl:a', 'rl:b']);
    // Granted at quorum; the last master's write may still be on its way on a loaded machine.
    expect((await holders('rl:a')).length).toBeGreaterThanOrEqual(2);
    await eventually(async () => (await holders('rl:a')).length === 3, 10_000, 'the third master to have the lock');
    expect(await holders('rl:a')).toEqual([both.token, both.token, both.token]);
    await both.release();
  });

  it('renews by quorum while held', async () => {
    const lock = await appA.locks.acquire('rl:renew', { ttl: 600 });
    const expiresAt = lock.expiresAt;
    const renewed = appA.locks.leaseStats.renewalsSent;
    await eventually(() => appA.locks.leaseStats.renewalsSent >= renewed + 3, 20_000, 'three renewals');
    expect(lock.signal.aborted).toBe(false);
    expect(lock.expiresAt).toBeGreaterThan(expiresAt);
    expect(await holders('rl:renew')).toHaveLength(3);
    await lock.release();
  });

  it('refuses semaphores and read locks, which it does not implement by quorum', async () => {
    await expect(appA.locks.acquire('rl:sem', { permits: 2 })).rejects.toThrow(/"permits" cannot be combined with "redlock"/);
    await expect(appA.locks.acquire('rl:read', { mode: 'read' })).rejects.toThrow(/"mode" cannot be combined with "redlock"/);
  });

  it('fails with LockNotAcquiredError, not unavailability, when a quorum of masters says busy', async () => {
    const held = await appA.locks.acquire('rl:busy');
    await expect(appB.locks.acquire('rl:busy', { wait: 100 })).rejects.toBeInstanceOf(LockNotAcquiredError);
    await held.release();
  });

  it('keeps working with one of three masters down, and uses it again once it is back', async () => {
    await masters[2].stop();
    const lock = await appA.locks.acquire('rl:down1', { wait: 5_000 });
    expect((await Promise.all(clients.slice(0, 2).map((c) => c.get('lock:{rl:down1}').then(ownerOf))))).toEqual([lock.token, lock.token]);
    await lock.release();

    await masters[2].restart();
    await clients[2].ping().catch(() => undefined);
    let onRestarted: string | null = null;
    const deadline = Date.now() + 20_000;
    /** Tokens this loop took: the restarted master answers NOSCRIPT, so an earlier lock's release
     * may still be on its way there (re-sent in full) when the next lock is taken by the quorum. */
    const ours = new Set<string>();
    // The app reconnects on its own; wait until the lock just taken shows up on the restarted master too.
    while (onRestarted === null && Date.now() < deadline) {
      const again = await appA.locks.acquire('rl:back', { wait: 5_000 });
      ours.add(again.token);
      onRestarted = ownerOf(await clients[2].get('lock:{rl:back}').catch(() => null));
      expect(onRestarted === null || ours.has(onRestarted)).toBe(true);
      if (onRestarted !== again.token) onRestarted = null;
      await again.release();
    }
    expect(onRestarted).not.toBeNull();
  });

  it('writes a held lock back on a master that restarted without its data, so it survives the masters restarting one by one', async () => {
    const lock = await appA.locks.acquire('rl:rolling', { ttl: 1_000, wait: 5_000 });
    await eventually(async () => (await holders('rl:rolling')).length === 3, 10_000, 'every master to hold the lock');
    const holdsIt = async (i: number) => ownerOf(await clients[i].get('lock:{rl:rolling}').catch(() => null)) === lock.token;
    // Each restart empties that master (no persistence). Without the write-back the second restart
    // would leave the lease on one master only, and its renewals would fail.
    for (const i of [0, 1, 2]) {
      await masters[i].restart();
      await eventually(() => holdsIt(i), 20_000, `master ${i} to hold the lock again after its restart`);
      // Its fence counter is raised too (a script, so after the SET when Redis answers it NOSCRIPT).
      await eventually(async () => Number(await clients[i].get('lock:fences')) >= lock.fence, 10_000, `master ${i}'s fence counter to be raised`);
    }
    expect(lock.signal.aborted).toBe(false);
    expect(await holders('rl:rolling')).toEqual([lock.token, lock.token, lock.token]);
    // A master that someone else's attempt got to first keeps their key: the write-back is NX.
    await masters[0].restart();
    await eventually(async () => (await clients[0].ping().catch(() => null)) === 'PONG', 10_000, 'master 0 to answer');
    await clients[0].set('lock:{rl:rolling}', 'someone-else:1', 'PX', 60_000);
    const renewed = appA.locks.leaseStats.renewalsSent;
    await eventually(() => appA.locks.leaseStats.renewalsSent >= renewed + 3, 20_000, 'three renewals');
    expect(await clients[0].get('lock:{rl:rolling}')).toBe('someone-else:1');
    expect(lock.signal.aborted).toBe(false);
    await lock.release();
    await eventually(async () => (await holders('rl:rolling')).join() === 'someone-else', 10_000, 'every master to release rl:rolling');
    await clients[0].del('lock:{rl:rolling}');
  });

  it('fails with LockUnavailableError within the wait when two of three masters are down, leaving no key on the survivor', async () => {
    await masters[1].stop();
    await masters[2].stop();
    await expect(appA.locks.acquire('rl:down2', { wait: 1_000 })).rejects.toBeInstanceOf(LockUnavailableError);
    expect(await clients[0].exists('lock:{rl:down2}')).toBe(0);
  });

  it('aborts the signal when renewal loses the quorum', async () => {
    // Masters 1 and 2 are still down from the previous test: bring them back, hold, then lose two.
    await masters[1].restart();
    await masters[2].restart();
    const lock = await appA.locks.acquire('rl:lose', { ttl: 1_000, wait: 20_000 });
    await masters[1].stop();
    await masters[2].stop();
    expect(String(await aborted(lock.signal))).toContain('rl:lose');
    await lock.release();
  });
});

describe('Redlock: writing a lease back on a master that lost it', () => {
  afterAll(async () => {
    await stopAllRedisServers();
  });

  it('happens only after a quorum renewed it, and only while the lease is still held', async () => {
    const masters = await RedisServer.startMany(3);
    const admins = masters.map((m) => m.client({ maxRetriesPerRequest: 1 }));
    const store = RedlockStore.create(masters.map((m) => ({ host: m.host, port: m.port, maxRetriesPerRequest: 1 })), 'lock:');
    const intent = { announceFor: 0, mode: undefined } as const;
    const lockKey = (key: string) => `lock:{${key}}`;
    try {
      const take = async (key: string) => {
        const token = newOwnerToken();
        const outcome = await store.acquire([key], token, 30_000, intent);
        if (!outcome.acquired) throw new Error(`${key} not acquired`);
        await eventually(async () => (await Promise.all(admins.map((c) => c.exists(lockKey(key))))).every((n) => n === 1), 10_000, `every master to hold ${key}`);
        return { token, fences: outcome.fences };
      };
      // Released meanwhile (state no longer "held"): master 0 lost the key, and it stays lost.
      const released = await take('wb:released');
      await admins[0].del(lockKey('wb:released'));
      const renewal = { keys: ['wb:released'], token: released.token, ttl: 30_000, fences: released.fences };
      expect(await store.extend([{ ...renewal, stillHeld: () => false }])).toEqual([true]);
      // No quorum renewed it (two masters lost it): nothing is written back anywhere.
      const lost = await take('wb:lost');
      await admins[0].del(lockKey('wb:lost'));
      await admins[1].del(lockKey('wb:lost'));
      expect(await store.extend([{ keys: ['wb:lost'], token: lost.token, ttl: 30_000, fences: lost.fences, stillHeld: () => true }])).toEqual([false]);
      // Still held: written back on master 0 with the lease's fence.
      const held = await take('wb:held');
      await admins[0].del(lockKey('wb:held'));
      expect(await store.extend([{ keys: ['wb:held'], token: held.token, ttl: 30_000, fences: held.fences, stillHeld: () => true }])).toEqual([true]);
      await eventually(async () => (await admins[0].get(lockKey('wb:held'))) === `${held.token}:${held.fences[0]}`, 10_000, 'master 0 to hold wb:held again');
      // Master 0 answers renewals in order, and a write-back goes out as its answer comes in, on the
      // same connection: one for wb:released or wb:lost would have run before this one.
      expect(await admins[0].exists(lockKey('wb:released'))).toBe(0);
      expect(await Promise.all([0, 1].map((i) => admins[i].exists(lockKey('wb:lost'))))).toEqual([0, 0]);
    } finally {
      await store.close();
      await Promise.all(admins.map((c) => c.quit().catch(() => undefined)));
    }
  }, 60_000);
});

/** A RedlockStore over three fresh masters, the first reached through a TcpProxy (to slow its replies), and a direct client to each. */
async function startMastersFirstBehindProxy() {
  const masters = await RedisServer.startMany(3);
  const proxy = await TcpProxy.start(masters[0].port);
  const admins = masters.map((m) => m.client({ maxRetriesPerRequest: 1 }));
  const store = RedlockStore.create(
    [{ host: masters[0].host, port: proxy.port }, ...masters.slice(1).map((m) => ({ host: m.host, port: m.port, maxRetriesPerRequest: 1 }))],
    'lock:',
  );
  const close = async () => {
    await store.close();
    await proxy.close();
    await Promise.all(admins.map((c) => c.quit().catch(() => undefined)));
  };
  return { proxy, admins, store, close };
}

describe('Redlock: a release that meets NOSCRIPT on one master', () => {
  afterAll(async () => {
    await stopAllRedisServers();
  });

  it("still runs there before the same token's next attempt, so a quorum counting that master really holds the lock", async () => {
    const { proxy, admins, store, close } = await startMastersFirstBehindProxy();
    const key = 'rl:noscript';
    const holderOn = async (i: number) => ownerOf(await admins[i].get(`lock:{${key}}`));
    const intent = { announceFor: 0, mode: undefined } as const;
    try {
      // Both scripts used once on every connection: from now on they go by SHA.
      const warm = newOwnerToken();
      expect((await store.acquire([key], warm, 10_000, intent)).acquired).toBe(true);
      await store.release([key], warm);
      const token = newOwnerToken();
      expect((await store.acquire([key], token, 10_000, intent)).acquired).toBe(true);
      await eventually(async () => (await holderOn(0)) === token, 10_000, 'master 0 to hold the lock');
      // Master 0 loses its scripts (a restart or failover does this); another client brings back
      // the acquire script only. Its replies are slow, so the release's NOSCRIPT comes back late.
      await admins[0].script('FLUSH');
      await admins[0].script('LOAD', ACQUIRE_SCRIPT);
      proxy.setLatency(1_000, 'toClient');
      await store.release([key], token); // decided by masters 1 and 2; master 0's is still under way
      // Someone else holds the key on master 2 now: the next quorum needs master 0.
      await admins[2].set(`lock:{${key}}`, `${newOwnerToken()}:1`, 'PX', 30_000);
      const again = await store.acquire([key], token, 10_000, intent);
      expect(again.acquired).toBe(true);
      // Once every reply is in, both masters of that quorum hold it: master 0's release (re-sent as
      // EVAL after NOSCRIPT) ran before the attempt, not after it.
      proxy.setLatency(0);
      await eventually(async () => (await holderOn(0)) === token, 15_000, "master 0 to hold the second attempt's lock");
      await new Promise((resolve) => setTimeout(resolve, 2_000)); // a late re-sent release would have landed by now
      expect([await holderOn(0), await holderOn(1)]).toEqual([token, token]);
      await store.release([key], token);
      await admins[2].del(`lock:{${key}}`);
    } finally {
      await close();
    }
  }, 60_000);

  it("an attempt there that Redis answers NOSCRIPT still runs before the lease's release, so nothing is left behind", async () => {
    const { proxy, admins, store, close } = await startMastersFirstBehindProxy();
    const key = 'rl:noscript-attempt';
    const intent = { announceFor: 0, mode: undefined } as const;
    try {
      // Both scripts used once on every connection: from now on they go by SHA.
      const warm = newOwnerToken();
      expect((await store.acquire([key], warm, 10_000, intent)).acquired).toBe(true);
      await store.release([key], warm);
      // Master 0 (behind the proxy, so often not among the quorum) has run both by now.
      const shaOf = (lua: string) => createHash('sha1').update(lua).digest('hex');
      await eventually(async () => ((await admins[0].script('EXISTS', shaOf(ACQUIRE_SCRIPT), shaOf(RELEASE_ONE_SCRIPT))) as number[]).join() === '1,1', 10_000, 'master 0 to run both scripts');
      await eventually(async () => (await admins[0].exists(`lock:{${key}}`)) === 0, 10_000, 'master 0 to run the release');
      // Master 0 loses its scripts; another client brings back the release script only. Its replies
      // are slow: the quorum of masters 1 and 2 grants the lock, and the caller releases it, while
      // master 0's attempt waits for its NOSCRIPT answer and is re-sent as EVAL.
      await admins[0].script('FLUSH');
      await admins[0].script('LOAD', RELEASE_ONE_SCRIPT);
      proxy.setLatency(1_000, 'toClient');
      const token = newOwnerToken();
      expect((await store.acquire([key], token, 30_000, intent)).acquired).toBe(true);
      await store.release([key], token);
      proxy.setLatency(0);
      // Master 0 ran the attempt (the acquire script is loaded again); its release ran after it.
      await eventually(async () => ((await admins[0].script('EXISTS', shaOf(ACQUIRE_SCRIPT))) as number[])[0] === 1, 15_000, 'master 0 to run the attempt');
      await new Promise((resolve) => setTimeout(resolve, 2_000)); // a release still on its way has landed by now
      expect(await Promise.all([0, 1, 2].map((i) => admins[i].get(`lock:{${key}}`)))).toEqual([null, null, null]);
    } finally {
      await close();
    }
  }, 60_000);
});

/** Master 0's client as the store holds it, with the ioredis queues the tests look at. */
type ClientSeen = {
  status: string;
  once(event: 'ready', listener: () => void): unknown;
  offlineQueue: { length: number };
  commandQueue: { length: number };
};

/**
 * A RedlockStore over three fresh masters, with `maxRetriesPerRequest: null` (ioredis keeps a
 * command for a master that is down or hung waiting for ever), `master0` options added to master
 * 0's connection, and that connection's client as the store sees it.
 */
async function storeOverThreeMasters(limits: Parameters<typeof RedlockStore.create>[2] = {}, master0: RedisOptions = {}) {
  const masters = await RedisServer.startMany(3);
  const store = RedlockStore.create(
    masters.map((m, i) => ({ host: m.host, port: m.port, maxRetriesPerRequest: null, ...(i === 0 ? master0 : {}) })),
    'lock:',
    limits,
  );
  const client0 = store.masterStores[0].inspectionTarget.client as unknown as ClientSeen;
  // Every connection up before the test starts: a quorum answers without master 0, so a first
  // call alone does not ensure that master 0 was ever connected (and one never connected is not
  // "down": its commands queue as usual).
  await Promise.all(store.masterStores.map((m) => m.inspectionTarget.client.ping()));
  const intent = { announceFor: 0, mode: undefined } as const;
  /** Takes a free key (by quorum) with a new token and releases it. */
  const cycle = async (key: string) => {
    const token = newOwnerToken();
    expect((await store.acquire([key], token, 30_000, intent)).acquired).toBe(true);
    expect(await store.release([key], token)).toBe(1);
  };
  const close = async () => {
    await store.close();
    await Promise.all(masters.map((m) => m.stop()));
  };
  return { masters, store, client0, intent, cycle, close };
}

describe('Redlock: a release while a master is down', () => {
  it('reaches that master once it is back, so a lock it kept through its restart is not left held there', async () => {
    // Master 0 keeps every write (fsync always), as a master with persistence may: the key survives its restart.
    const masters = await RedisServer.startMany(3, { args: ['--appendonly', 'yes', '--appendfsync', 'always'] });
    // Clients passed in, so the test can see when the app's connection to master 0 has dropped.
    const connections = masters.map((m) => new Redis({ host: m.host, port: m.port }));
    const admin = masters[0].client({ maxRetriesPerRequest: 1 });
    const app = await startLockApp({ redlock: connections, wait: 0 });
    try {
      const lock = await app.locks.acquire('rl:release-down', { ttl: 60_000 });
      await eventually(async () => ownerOf(await admin.get('lock:{rl:release-down}')) === lock.token, 10_000, 'master 0 to hold the lock');
      await masters[0].kill();
      await eventually(async () => connections[0].status !== 'ready', 10_000, "the app's connection to master 0 to drop");
      await lock.release();
      await masters[0].restart();
      await eventually(
        async () => (await admin.get('lock:{rl:release-down}').catch(() => 'no answer')) === null,
        20_000,
        'master 0 to run the release once it is back',
      );
    } finally {
      await app.close();
      connections.forEach((c) => c.disconnect());
      admin.disconnect();
      await Promise.all(masters.map((m) => m.stop()));
    }
  }, 60_000);

  it('gives back a refused attempt only where it was sent: nothing is queued for a master that is down', async () => {
    const { masters, store, client0, intent, close } = await storeOverThreeMasters();
    try {
      expect((await store.acquire(['rl:warm'], newOwnerToken(), 30_000, intent)).acquired).toBe(true);
      await masters[0].kill();
      await eventually(async () => client0.status !== 'ready', 10_000, "the store's connection to master 0 to drop");
      expect((await store.acquire(['rl:busy'], newOwnerToken(), 30_000, intent)).acquired).toBe(true);
      // Busy on masters 1 and 2; master 0 was skipped, so it has nothing of these tokens to give back.
      for (let i = 0; i < 5; i++) expect((await store.acquire(['rl:busy'], newOwnerToken(), 30_000, intent)).acquired).toBe(false);
      expect(client0.offlineQueue.length).toBe(0);
    } finally {
      await close();
    }
  }, 60_000);

  it('waits there only up to a bound: past it, a release skips the master that is down', async () => {
    const limit = 2;
    const { masters, store, client0, intent, cycle, close } = await storeOverThreeMasters({ queuedReleases: limit });
    try {
      expect((await store.acquire(['rl:warm'], newOwnerToken(), 30_000, intent)).acquired).toBe(true);
      await masters[0].kill();
      await eventually(async () => client0.status !== 'ready', 10_000, "the store's connection to master 0 to drop");
      // Each released by the two masters that are up (a quorum), whether or not master 0 queued it.
      for (const key of ['rl:q1', 'rl:q2', 'rl:q3', 'rl:q4', 'rl:q5']) await cycle(key);
      expect(client0.offlineQueue.length).toBe(limit);
      // Once master 0 is back, the queued releases run and the bound is free again.
      await masters[0].restart();
      await eventually(async () => client0.status === 'ready' && client0.offlineQueue.length === 0, 20_000, 'master 0 to be back and run the queued releases');
      const token = newOwnerToken();
      expect((await store.acquire(['rl:after'], token, 30_000, intent)).acquired).toBe(true);
      expect(await store.release(['rl:after'], token)).toBe(1);
    } finally {
      await close();
    }
  }, 60_000);

  it('skips a master that has answered nothing for a while (hung, its connection open), so attempts stop piling up there, queues only releases for it, and uses it again once it answers', async () => {
    const hungAfterMs = 300;
    const { masters, store, client0, intent, cycle, close } = await storeOverThreeMasters({ hungAfterMs });
    const admin0 = masters[0].client({ maxRetriesPerRequest: 1 });
    const pid = masters[0].pid as number;
    try {
      await cycle('rl:h0');
      process.kill(pid, 'SIGSTOP');
      // Sent to master 0 while it still counts as merely slow: an attempt and a release wait there.
      await cycle('rl:h1');
      const waiting = client0.commandQueue.length;
      expect(waiting).toBeGreaterThan(0);
      await new Promise((resolve) => setTimeout(resolve, hungAfterMs * 2));
      // Hung once the others have answered something after that silence (the first call may still go there).
      await cycle('rl:h2');
      const queued = client0.commandQueue.length;
      expect(queued).toBeGreaterThanOrEqual(waiting);
      for (const key of ['rl:h3', 'rl:h4', 'rl:h5', 'rl:h6']) await cycle(key);
      // No attempt was sent there any more (decided by masters 1 and 2 alone); only the releases
      // wait for it, to run once it is back.
      expect(client0.status).toBe('ready');
      expect(client0.commandQueue.length).toBe(queued + 4);
      process.kill(pid, 'SIGCONT');
      await eventually(async () => client0.commandQueue.length === 0, 20_000, 'master 0 to answer what waited');
      // Nothing it took while it was hung is left held there.
      for (const key of ['rl:h0', 'rl:h1', 'rl:h2', 'rl:h3', 'rl:h4', 'rl:h5', 'rl:h6']) {
        await eventually(async () => (await admin0.exists(`lock:{${key}}`)) === 0, 10_000, `master 0 to have let go of ${key}`);
      }
      // It answers again, so it takes part again: the next lock is taken there too.
      const token = newOwnerToken();
      expect((await store.acquire(['rl:h7'], token, 30_000, intent)).acquired).toBe(true);
      await eventually(async () => ownerOf(await admin0.get('lock:{rl:h7}')) === token, 10_000, 'master 0 to hold rl:h7');
      expect(await store.release(['rl:h7'], token)).toBe(1);
    } finally {
      process.kill(pid, 'SIGCONT');
      admin0.disconnect();
      await close();
    }
  }, 60_000);

  it('redlockHungAfter sets how long a master may leave calls unanswered before the module skips it', async () => {
    const masters = await RedisServer.startMany(3);
    // Clients passed in, so the test can see what waits for master 0.
    const connections = masters.map((m) => new Redis({ host: m.host, port: m.port, maxRetriesPerRequest: null }));
    const queue0 = () => (connections[0] as unknown as { commandQueue: { length: number } }).commandQueue.length;
    await Promise.all(connections.map((c) => c.ping())); // master 0 connected before it hangs
    const app = await startLockApp({ redlock: connections, redlockHungAfter: 300, wait: 0 });
    const pid = masters[0].pid as number;
    const cycle = async (key: string) => (await app.locks.acquire(key)).release();
    try {
      await cycle('rl:m0');
      process.kill(pid, 'SIGSTOP');
      await cycle('rl:m1');
      await new Promise((resolve) => setTimeout(resolve, 600));
      await cycle('rl:m2');
      const queued = queue0();
      for (const key of ['rl:m3', 'rl:m4', 'rl:m5', 'rl:m6']) await cycle(key);
      // Four releases at most wait for it; no attempt was sent there any more.
      expect(queue0() - queued).toBeLessThanOrEqual(4);
      process.kill(pid, 'SIGCONT');
      await eventually(async () => queue0() === 0, 20_000, 'master 0 to answer what waited');
    } finally {
      process.kill(pid, 'SIGCONT');
      await app.close();
      connections.forEach((c) => c.disconnect());
      await Promise.all(masters.map((m) => m.stop()));
    }
  }, 60_000);

  it('still takes a master for hung when ioredis times its calls out (commandTimeout): a timeout is no answer', async () => {
    const { masters, store, client0, intent, close } = await storeOverThreeMasters({ hungAfterMs: 300 }, { commandTimeout: 2_000 });
    const pid = masters[0].pid as number;
    const take = async (key: string, token = newOwnerToken()) => expect((await store.acquire([key], token, 30_000, intent)).acquired).toBe(true);
    try {
      const held = newOwnerToken();
      await take('rl:t0', held);
      process.kill(pid, 'SIGSTOP');
      await take('rl:t1');
      // A renewal too: renewals go as a pipeline, which resolves with ioredis' timeout in its answers.
      expect(await store.extend([{ keys: ['rl:t0'], token: held, ttl: 30_000 }])).toEqual([true]);
      // ioredis times those out (2 s): they stay queued for master 0, but they were no answer.
      await new Promise((resolve) => setTimeout(resolve, 2_500));
      // Nothing pending there now, so this attempt goes (and answers whether it is back)...
      await take('rl:t2');
      const queued = client0.commandQueue.length;
      // ...and while it waits, master 0 counts as silent since rl:t1: skipped.
      await take('rl:t3');
      expect(client0.commandQueue.length).toBe(queued);
    } finally {
      process.kill(pid, 'SIGCONT');
      await close();
    }
  }, 60_000);

  it('does not take a master for hung the moment it is back, although releases queued while it was down are still unanswered', async () => {
    const { masters, store, client0, intent, cycle, close } = await storeOverThreeMasters({ hungAfterMs: 300 });
    const admin0 = masters[0].client({ maxRetriesPerRequest: 1 });
    try {
      await cycle('rl:r0');
      await masters[0].kill();
      await eventually(async () => client0.status !== 'ready', 10_000, "the store's connection to master 0 to drop");
      await cycle('rl:r1'); // its release waits for master 0
      await new Promise((resolve) => setTimeout(resolve, 600));
      await cycle('rl:r2'); // answered by the others, long after master 0 fell silent
      // The first attempt made once the connection is ready again goes to master 0 too.
      const token = newOwnerToken();
      const taken = new Promise<boolean>((resolve, reject) => {
        client0.once('ready', () => store.acquire(['rl:r3'], token, 30_000, intent).then((outcome) => resolve(outcome.acquired), reject));
      });
      await masters[0].restart();
      expect(await taken).toBe(true);
      await eventually(async () => ownerOf(await admin0.get('lock:{rl:r3}').catch(() => null)) === token, 10_000, 'master 0 to hold rl:r3');
      expect(await store.release(['rl:r3'], token)).toBe(1);
    } finally {
      admin0.disconnect();
      await close();
    }
  }, 60_000);

  it('takes no master for hung when this process itself stood still with calls pending on all of them', async () => {
    const hungAfterMs = 100;
    const { store, intent, close } = await storeOverThreeMasters({ hungAfterMs });
    try {
      const [first, second] = [newOwnerToken(), newOwnerToken()];
      await store.release(['rl:still-warm'], newOwnerToken()); // connections up and scripts loaded
      const pending = store.acquire(['rl:still-1'], first, 30_000, intent);
      // A long synchronous task: the replies wait unread in the sockets past hungAfterMs.
      const until = Date.now() + hungAfterMs * 3;
      while (Date.now() < until) {
        // busy
      }
      const next = store.acquire(['rl:still-2'], second, 30_000, intent);
      expect((await pending).acquired).toBe(true);
      expect((await next).acquired).toBe(true);
    } finally {
      await close();
    }
  }, 60_000);
});

/**
 * Test harness: a throw-away Redis Sentinel deployment (one master, N
 * replicas, M sentinels) built from `RedisServer` processes.
 *
 *   const set = await RedisSentinelSet.start();          // 1 master + 1 replica, 3 sentinels
 *   const redis = new Redis(set.redisOptions());          // ioredis in sentinel mode; the caller quits it
 *   const { from, to } = await set.failover();            // forced failover, waits until it is complete
 *   ...
 *   await redis.quit();
 *   await set.stop();
 *
 * Data nodes and sentinels are all `RedisServer`s (free port, 127.0.0.1,
 * persistence off, own temp dir, SIGKILLed on process exit). Each sentinel is
 * `redis-server <temp dir>/redis.conf --sentinel ...` with a generated config
 * file (sentinels rewrite it) in its own temp dir.
 *
 * Everything is on 127.0.0.1, so no announce-ip/announce-port settings and no
 * ioredis `natMap` are needed: the addresses the sentinels report are the ones
 * clients can reach.
 */
// Timers from the module, not the globals, so jest.useFakeTimers() can't stall the harness.
import { setTimeout } from 'node:timers';
import { Redis, type RedisOptions } from 'ioredis';
import { RedisServer } from './redis-server.js';
import { adminCall, parseInfo } from './redis-admin.js';

const HOST = '127.0.0.1';
const START_TIMEOUT_MS = 30_000;
const FAILOVER_TIMEOUT_MS = 30_000;
const POLL_INTERVAL_MS = 100;

export interface RedisSentinelSetOptions {
  /** Replicas of the initial master. Default 1 (failover() needs at least 1). */
  replicas?: number;
  /** Sentinel processes. Default 3 (quorum 2); quorum is a majority: 1 → 1, 2 → 2, 3 → 2, 5 → 3. */
  sentinels?: number;
  /** The monitored master's name. Default 'mymaster'. */
  masterName?: string;
}

export interface HostPort {
  host: string;
  port: number;
}

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}


async function replicationInfo(port: number): Promise<Map<string, string>> {
  return parseInfo(String(await adminCall(port, 'INFO', 'replication')));
}

/** A RESP2 flat `[k1, v1, k2, v2, ...]` reply (as SENTINEL MASTER / REPLICAS / SENTINELS give) as a map. */
function pairs(reply: unknown): Map<string, string> {
  const map = new Map<string, string>();
  const list = reply as unknown[];
  for (let i = 0; i + 1 < list.length; i += 2) map.set(String(list[i]), String(list[i + 1]));
  return map;
}

function masterQuorum(sentinels: number): number {
  return Math.floor(sentinels / 2) + 1;
}

// ---------------------------------------------------------------------------
// RedisSentinelSet
// ---------------------------------------------------------------------------

export class RedisSentinelSet {
  readonly masterName: string;
  /** Data nodes: `[initial master, ...replicas]`. Roles change with failover(). */
  readonly servers: RedisServer[];
  /** Sentinel processes (`redis-server <conf> --sentinel`); each has `port` and `pid`. */
  readonly sentinels: RedisServer[];
  private stopped = false;

  private constructor(masterName: string, servers: RedisServer[], sentinels: RedisServer[]) {
    this.masterName = masterName;
    this.servers = servers;
    this.sentinels = sentinels;
  }

  /**
   * Starts the master, its replicas (`--replicaof`) and the sentinels; resolves
   * once replication is up and every sentinel knows every replica and every
   * other sentinel, so an immediate failover() works (30 s deadline).
   */
  static async start(options: RedisSentinelSetOptions = {}): Promise<RedisSentinelSet> {
    const replicas = options.replicas ?? 1;
    const sentinels = options.sentinels ?? 3;
    const masterName = options.masterName ?? 'mymaster';
    if (!Number.isInteger(replicas) || replicas < 0) {
      throw new RangeError(`RedisSentinelSet.start: replicas must be a non-negative integer, got ${replicas}`);
    }
    if (!Number.isInteger(sentinels) || sentinels < 1) {
      throw new RangeError(`RedisSentinelSet.start: sentinels must be a positive integer, got ${sentinels}`);
    }
    if (!/^[A-Za-z0-9._-]+$/.test(masterName)) {
      throw new RangeError(`RedisSentinelSet.start: masterName must match [A-Za-z0-9._-]+, got ${JSON.stringify(masterName)}`);
    }
    const deadline = Date.now() + START_TIMEOUT_MS;
    // Any data node may become master: no 5 s wait before a diskless full sync (the Redis 7 default).
    const dataArgs = ['--repl-diskless-sync-delay', '0'];
    const servers: RedisServer[] = [];
    const sentinelServers: RedisServer[] = [];
    const set = new RedisSentinelSet(masterName, servers, sentinelServers);
    try {
      const master = await RedisServer.start({ args: dataArgs });
      servers.push(master);
      servers.push(
        ...(await RedisServer.startMany(replicas, {
          args: [...dataArgs, '--replicaof', HOST, String(master.port)],
        })),
      );
      await set.waitFor(deadline, START_TIMEOUT_MS, 'replication to come up', () => set.replicationProblem(master));

      const config = [
        // port, bind, dir and protected-mode also come from the harness's CLI args (which win).
        'bind 127.0.0.1',
        `sentinel monitor ${masterName} ${HOST} ${master.port} ${masterQuorum(sentinels)}`,
        `sentinel down-after-milliseconds ${masterName} 1000`,
        `sentinel failover-timeout ${masterName} 5000`,
        `sentinel parallel-syncs ${masterName} 1`,
        '',
      ].join('\n');
      sentinelServers.push(...(await RedisServer.startMany(sentinels, { config, args: ['--sentinel'] })));
      await set.waitFor(deadline, START_TIMEOUT_MS, 'the sentinels to discover the deployment', () =>
        set.sentinelProblem(master.port),
      );
      return set;
    } catch (err) {
      await set.stop().catch(() => undefined);
      throw err;
    }
  }

  /** `[{ host: '127.0.0.1', port }, ...]` for every sentinel. */
  get sentinelAddresses(): HostPort[] {
    return this.sentinels.map((s) => ({ host: s.host, port: s.port }));
  }

  /**
   * Options for an ioredis client in sentinel mode: `new Redis(set.redisOptions())`.
   * `overrides` are merged in last.
   */
  redisOptions(overrides: RedisOptions = {}): RedisOptions {
    return { sentinels: this.sentinelAddresses, name: this.masterName, ...overrides };
  }

  /** The master's address according to the first sentinel that answers (SENTINEL get-master-addr-by-name). */
  async currentMaster(): Promise<HostPort> {
    let lastError: unknown;
    for (const sentinel of this.sentinels) {
      if (!sentinel.running) continue;
      try {
        const reply = (await adminCall(sentinel.port, 'SENTINEL', 'get-master-addr-by-name', this.masterName)) as
          | [string, string]
          | null;
        if (reply) return { host: reply[0], port: Number(reply[1]) };
        lastError = new Error(`sentinel ${sentinel.port} does not know master ${this.masterName}`);
      } catch (err) {
        lastError = err;
      }
    }
    throw new Error(`RedisSentinelSet: no sentinel reported the master: ${(lastError as Error | undefined)?.message ?? 'no sentinel running'}`);
  }

  /**
   * Forces a failover (SENTINEL FAILOVER <name>) and resolves once it is
   * complete: every sentinel reports the new master and has finished the
   * failover, the new master reports role:master, the old one (if running)
   * role:slave with its link to the new master up, and the sentinels list every
   * other data node as a healthy replica (so another failover() can follow). 30 s deadline.
   */
  async failover(): Promise<{ from: number; to: number }> {
    const deadline = Date.now() + FAILOVER_TIMEOUT_MS;
    const from = (await this.currentMaster()).port;

    // The command can be refused transiently (INPROG, NOGOODSLAVE while a sentinel refreshes): retry.
    let requested = false;
    let lastError: unknown;
    while (!requested) {
      for (const sentinel of this.sentinels) {
        if (!sentinel.running) continue;
        try {
          await adminCall(sentinel.port, 'SENTINEL', 'FAILOVER', this.masterName);
          requested = true;
          break;
        } catch (err) {
          lastError = err;
        }
      }
      if (requested) break;
      if (Date.now() >= deadline) {
        throw new Error(`RedisSentinelSet.failover: SENTINEL FAILOVER refused: ${(lastError as Error | undefined)?.message}`);
      }
      await delay(250);
    }

    let to = from;
    await this.waitFor(deadline, FAILOVER_TIMEOUT_MS, `the failover away from ${from} to complete`, async () => {
      const ports = new Set<number>();
      for (const sentinel of this.sentinels) {
        if (!sentinel.running) continue;
        const reply = (await adminCall(sentinel.port, 'SENTINEL', 'get-master-addr-by-name', this.masterName)) as
          | [string, string]
          | null;
        ports.add(reply ? Number(reply[1]) : -1);
      }
      if (ports.size !== 1) return `sentinels disagree about the master: ${[...ports].join(', ')}`;
      to = [...ports][0]!;
      if (to === from) return `sentinels still report ${from}`;
      const newMaster = this.servers.find((s) => s.port === to);
      if (!newMaster) return `sentinels report unknown master ${to}`;
      const toRole = (await replicationInfo(to)).get('role');
      if (toRole !== 'master') return `${to} reports role:${toRole}`;
      const old = this.servers.find((s) => s.port === from);
      if (old?.running) {
        const info = await replicationInfo(from);
        if (info.get('role') !== 'slave' || info.get('master_port') !== String(to) || info.get('master_link_status') !== 'up') {
          return `old master ${from} reports role:${info.get('role')} master_port:${info.get('master_port')} master_link_status:${info.get('master_link_status')}`;
        }
      }
      return this.sentinelProblem(to);
    });
    return { from, to };
  }

  /** Stops the sentinels, then the data nodes; removes their temp dirs. Idempotent. */
  async stop(): Promise<void> {
    const errors: unknown[] = [];
    for (const group of [this.sentinels, this.servers]) {
      const results = await Promise.allSettled(group.map((s) => s.stop()));
      errors.push(...results.flatMap((r) => (r.status === 'rejected' ? [r.reason as unknown] : [])));
    }
    this.stopped = true;
    if (errors.length === 1) throw errors[0];
    if (errors.length > 1) throw new AggregateError(errors, 'RedisSentinelSet.stop: some processes failed to stop');
  }

  // -------------------------------------------------------------------------

  /** Polls `check` (undefined/'' = done, else a description of what is missing) until `deadline`. */
  private async waitFor(
    deadline: number,
    budgetMs: number,
    what: string,
    check: () => Promise<string | undefined>,
  ): Promise<void> {
    let lastProblem: string | undefined = 'not checked yet';
    for (;;) {
      if (this.stopped) throw new Error(`RedisSentinelSet: stopped while waiting for ${what}`);
      try {
        lastProblem = await check();
        if (!lastProblem) return;
      } catch (err) {
        lastProblem = (err as Error).message;
      }
      if (Date.now() >= deadline) {
        throw new Error(
          `RedisSentinelSet: timed out after ${budgetMs} ms waiting for ${what} (${lastProblem})\n` +
            [...this.servers, ...this.sentinels]
              .map((s) => `--- ${this.sentinels.includes(s) ? 'sentinel' : 'server'} ${s.port} ---\n${s.recentOutput}`)
              .join('\n'),
        );
      }
      await delay(POLL_INTERVAL_MS);
    }
  }

  /** Undefined when `master` sees all replicas online and every replica's link is up. */
  private async replicationProblem(master: RedisServer): Promise<string | undefined> {
    const replicas = this.servers.filter((s) => s !== master);
    const info = await replicationInfo(master.port);
    if (info.get('connected_slaves') !== String(replicas.length)) {
      return `master ${master.port} reports connected_slaves:${info.get('connected_slaves')}`;
    }
    for (let i = 0; i < replicas.length; i++) {
      if (!/state=online/.test(info.get(`slave${i}`) ?? '')) return `master ${master.port}: slave${i}:${info.get(`slave${i}`)}`;
    }
    for (const replica of replicas) {
      const status = (await replicationInfo(replica.port)).get('master_link_status');
      if (status !== 'up') return `replica ${replica.port} reports master_link_status:${status}`;
    }
    return undefined;
  }

  /**
   * Undefined when every running sentinel reports `masterPort` as the master
   * (not in failover), every other running data node as a healthy replica, and
   * every other sentinel.
   */
  private async sentinelProblem(masterPort: number): Promise<string | undefined> {
    const running = this.sentinels.filter((s) => s.running);
    const replicaPorts = this.servers.filter((s) => s.port !== masterPort && s.running).map((s) => s.port);
    for (const sentinel of running) {
      const master = pairs(await adminCall(sentinel.port, 'SENTINEL', 'MASTER', this.masterName));
      if (master.get('port') !== String(masterPort) || master.get('flags') !== 'master') {
        return `sentinel ${sentinel.port}: master port:${master.get('port')} flags:${master.get('flags')}`;
      }
      const replicas = ((await adminCall(sentinel.port, 'SENTINEL', 'REPLICAS', this.masterName)) as unknown[]).map(pairs);
      for (const port of replicaPorts) {
        const replica = replicas.find((r) => r.get('port') === String(port));
        if (!replica) return `sentinel ${sentinel.port} does not know replica ${port} yet`;
        if (replica.get('flags') !== 'slave') return `sentinel ${sentinel.port}: replica ${port} flags:${replica.get('flags')}`;
      }
      const peers = ((await adminCall(sentinel.port, 'SENTINEL', 'SENTINELS', this.masterName)) as unknown[]).map(pairs);
      const healthyPeers = peers.filter((p) => p.get('flags') === 'sentinel');
      if (healthyPeers.length < running.length - 1) {
        return `sentinel ${sentinel.port} knows ${healthyPeers.length} of ${running.length - 1} other sentinels`;
      }
    }
    return undefined;
  }
}

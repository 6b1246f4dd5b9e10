/**
 * Test harness: a throw-away Redis Cluster (masters only) built from
 * `RedisServer` processes, for integration tests.
 *
 *   const cluster = await RedisCluster.start();      // 3 masters, all slots covered
 *   const redis = cluster.client();                  // ioredis Cluster; the caller quits it
 *   ...
 *   await redis.quit();
 *   await cluster.stop();
 *
 * Every node is a `RedisServer` (free port, 127.0.0.1, persistence off, temp
 * dir, killed on process exit) started with `--cluster-enabled yes`; the
 * cluster is formed with `redis-cli --cluster create`. Each node's port is
 * picked so that its cluster bus port (port + 10000) is free too.
 *
 * `nodes[i].kill()` + `nodes[i].restart()` brings a node back with its
 * nodes.conf (it rejoins the cluster); `stop()` + `restart()` does not (the temp
 * dir is removed, so the node comes back as an empty, unclustered node).
 */
import { execFile } from 'node:child_process';
import net, { type AddressInfo } from 'node:net';
// Timers from the module, not the globals, so jest.useFakeTimers() can't stall the harness.
import { clearTimeout, setTimeout } from 'node:timers';
import { Cluster, type ClusterOptions } from 'ioredis';
import { RedisServer } from './redis-server.js';
import { adminCall, parseInfo } from './redis-admin.js';

const HOST = '127.0.0.1';
const BUS_PORT_OFFSET = 10_000;
const MAX_PORT = 65_535;
const READY_TIMEOUT_MS = 20_000;
const CREATE_TIMEOUT_MS = 20_000;
const POLL_INTERVAL_MS = 100;
const ADMIN_TIMEOUT_MS = 2_000;
const TOTAL_SLOTS = 16_384;

export const REDIS_CLI_NOT_FOUND_MESSAGE =
  'redis-cli not found on PATH. Install it: apt-get install -y redis-tools (Debian/Ubuntu) or brew install redis (macOS)';

export interface RedisClusterOptions {
  /** Number of master nodes (each gets a share of the 16384 slots). At least 3 (redis-cli's minimum). Default 3. */
  masters?: number;
}

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Ports (and bus ports) claimed by clusters of this module copy, so concurrent nodes don't pick each other's bus port. */
const claimedPorts = new Set<number>();

function canBind(port: number): Promise<boolean> {
  return new Promise<boolean>((resolve) => {
    const probe = net.createServer();
    probe.unref();
    probe.once('error', () => resolve(false));
    probe.listen({ port, host: HOST, exclusive: true }, () => {
      const bound = (probe.address() as AddressInfo).port === port;
      probe.close(() => resolve(bound));
    });
  });
}

/** Accepts a port only if its bus port is in range, unclaimed and bindable; claims both on success. */
async function acceptClusterPort(port: number): Promise<boolean> {
  const bus = port + BUS_PORT_OFFSET;
  if (bus > MAX_PORT || claimedPorts.has(port) || claimedPorts.has(bus)) return false;
  if (!(await canBind(bus))) return false;
  if (claimedPorts.has(port) || claimedPorts.has(bus)) return false; // claimed while we probed
  claimedPorts.add(port);
  claimedPorts.add(bus);
  return true;
}


function runRedisCli(args: string[], timeoutMs: number): Promise<string> {
  return new Promise<string>((resolve, reject) => {
    execFile(
      'redis-cli',
      args,
      { timeout: timeoutMs, killSignal: 'SIGKILL', env: { ...process.env }, maxBuffer: 4 * 1024 * 1024 },
      (error, stdout, stderr) => {
        const output = `${stdout}${stderr ? `\n[stderr] ${stderr}` : ''}`;
        if (!error) return resolve(output);
        if ((error as NodeJS.ErrnoException).code === 'ENOENT') return reject(new Error(REDIS_CLI_NOT_FOUND_MESSAGE));
        reject(new Error(`redis-cli ${args.join(' ')} failed: ${error.message}\n${output}`));
      },
    );
  });
}

async function closeCluster(client: Cluster): Promise<void> {
  if (client.status === 'ready') {
    await client.quit().catch(() => client.disconnect());
  } else if (client.status !== 'end') {
    client.disconnect();
  }
}

// ---------------------------------------------------------------------------
// RedisCluster
// ---------------------------------------------------------------------------

export class RedisCluster {
  /** The cluster-enabled servers, all masters (in the order given to `redis-cli --cluster create`). */
  readonly nodes: RedisServer[];
  private stopped = false;

  private constructor(nodes: RedisServer[]) {
    this.nodes = nodes;
  }

  /**
   * Starts `masters` (default 3) cluster-enabled servers, joins them with
   * `redis-cli --cluster create ... --cluster-replicas 0`, and resolves once
   * every node reports `cluster_state:ok` and a Cluster client can SET/GET a
   * key on every node (20 s deadline).
   */
  static async start(options: RedisClusterOptions = {}): Promise<RedisCluster> {
    const masters = options.masters ?? 3;
    if (!Number.isInteger(masters) || masters < 3) {
      throw new RangeError(`RedisCluster.start: masters must be an integer >= 3 (redis-cli's minimum), got ${masters}`);
    }
    const nodes = await RedisServer.startMany(masters, {
      args: [
        '--cluster-enabled', 'yes',
        // Relative to --dir (redis-server chdirs there): <node's temp dir>/nodes.conf.
        '--cluster-config-file', 'nodes.conf',
        '--cluster-node-timeout', '2000',
      ],
      acceptPort: acceptClusterPort,
    });
    const cluster = new RedisCluster(nodes);
    try {
      const deadline = Date.now() + READY_TIMEOUT_MS;
      await runRedisCli(
        [
          '--cluster', 'create',
          ...nodes.map((n) => `${HOST}:${n.port}`),
          '--cluster-replicas', '0',
          '--cluster-yes',
        ],
        CREATE_TIMEOUT_MS,
      );
      await cluster.waitUntilReady(deadline);
      return cluster;
    } catch (err) {
      await cluster.stop().catch(() => undefined);
      throw err;
    }
  }

  /** `[{ host: '127.0.0.1', port }, ...]` for every node, e.g. for `new Cluster(startupNodes)`. */
  get startupNodes(): Array<{ host: string; port: number }> {
    return this.nodes.map((n) => ({ host: n.host, port: n.port }));
  }

  /** A new ioredis Cluster client for this cluster. The caller must quit/disconnect it. */
  client(options: ClusterOptions = {}): Cluster {
    return new Cluster(this.startupNodes, options);
  }

  /** Stops every node (SIGTERM, SIGKILL after 5 s) and removes their temp dirs. Idempotent. */
  async stop(): Promise<void> {
    const results = await Promise.allSettled(this.nodes.map((n) => n.stop()));
    if (!this.stopped) {
      this.stopped = true;
      for (const node of this.nodes) {
        claimedPorts.delete(node.port);
        claimedPorts.delete(node.port + BUS_PORT_OFFSET);
      }
    }
    const errors = results.flatMap((r) => (r.status === 'rejected' ? [r.reason as unknown] : []));
    if (errors.length === 1) throw errors[0];
    if (errors.length > 1) throw new AggregateError(errors, 'RedisCluster.stop: some nodes failed to stop');
  }

  // -------------------------------------------------------------------------

  private async waitUntilReady(deadline: number): Promise<void> {
    let lastProblem = 'not checked yet';
    for (;;) {
      try {
        lastProblem = (await this.clusterStateProblem()) ?? (await this.clientProblem(deadline));
        if (lastProblem === '') return;
      } catch (err) {
        lastProblem = (err as Error).message;
      }
      if (Date.now() >= deadline) {
        throw new Error(
          `RedisCluster: not ready within ${READY_TIMEOUT_MS} ms (${lastProblem})\n` +
            this.nodes.map((n) => `--- node ${n.port} ---\n${n.recentOutput}`).join('\n'),
        );
      }
      await delay(POLL_INTERVAL_MS);
    }
  }

  /** Undefined when every node reports a healthy cluster of all the nodes; else what is wrong. */
  private async clusterStateProblem(): Promise<string | undefined> {
    for (const node of this.nodes) {
      if (!node.running) return `node ${node.port} is not running`;
      const info = parseInfo(String(await adminCall(node.port, 'CLUSTER', 'INFO')));
      const expected: Record<string, string> = {
        cluster_state: 'ok',
        cluster_slots_assigned: String(TOTAL_SLOTS),
        cluster_slots_ok: String(TOTAL_SLOTS),
        cluster_known_nodes: String(this.nodes.length),
        cluster_size: String(this.nodes.length),
      };
      for (const [field, value] of Object.entries(expected)) {
        if (info.get(field) !== value) return `node ${node.port}: ${field}:${info.get(field)} (want ${value})`;
      }
    }
    return undefined;
  }

  /** '' when a Cluster client can SET/GET a key owned by each node; else what is wrong. */
  private async clientProblem(deadline: number): Promise<string> {
    const keys = await this.keyPerNode();
    const client = this.client({
      clusterRetryStrategy: () => null,
      enableOfflineQueue: true,
      maxRedirections: 16,
      redisOptions: { connectTimeout: ADMIN_TIMEOUT_MS, maxRetriesPerRequest: 1 },
    });
    client.on('error', () => undefined);
    try {
      for (const [port, key] of keys) {
        const value = `probe-${port}-${Date.now()}`;
        const remaining = Math.max(deadline - Date.now(), ADMIN_TIMEOUT_MS);
        const ok = await withTimeout(
          (async () => {
            await client.set(key, value, 'PX', 10_000);
            const got = await client.get(key);
            await client.del(key);
            return got === value;
          })(),
          Math.min(remaining, 5_000),
          `SET/GET of ${key} (owned by node ${port})`,
        );
        if (!ok) return `GET ${key} (owned by node ${port}) returned a different value`;
      }
      return '';
    } finally {
      await closeCluster(client);
    }
  }

  /** For every node, a key whose slot it owns (by CLUSTER SLOTS and CLUSTER KEYSLOT). */
  private async keyPerNode(): Promise<Map<number, string>> {
    const port0 = this.nodes[0]!.port;
    const ranges = (await adminCall(port0, 'CLUSTER', 'SLOTS')) as Array<[number, number, [string, number, ...unknown[]]]>;
    const ownerOf = (slot: number): number | undefined =>
      ranges.find(([start, end]) => slot >= start && slot <= end)?.[2][1];
    const keys = new Map<number, string>();
    for (let i = 0; keys.size < this.nodes.length && i < 1_000; i++) {
      const key = `__redis-cluster-harness__:probe:${i}`;
      const owner = ownerOf(Number(await adminCall(port0, 'CLUSTER', 'KEYSLOT', key)));
      if (owner !== undefined && !keys.has(owner)) keys.set(owner, key);
    }
    if (keys.size < this.nodes.length) throw new Error('some nodes own no slots yet');
    return keys;
  }
}

function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  promise.catch(() => undefined); // a late rejection (after the timeout) is not unhandled
  return Promise.race([
    promise,
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what} timed out after ${ms} ms`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

/**
 * The servers behind one safety run, how each app connects to them, and how faults are injected.
 *
 *   single    one Redis (AOF on, so a restart keeps its data); each app through its own TCP proxy
 *   redlock   three masters (AOF on); each app through its own proxy to each master
 *   sentinel  master + 1 replica + 3 sentinels; apps use waitForReplicas: 1
 *   cluster   three masters
 *   memory    no server: all apps in one process share the in-process store
 */
import type { LockModuleOptions } from '../../lib/index.js';
import { adminCall } from '../support/redis-admin.js';
import { RedisCluster } from '../support/redis-cluster.js';
import { RedisSentinelSet } from '../support/redis-sentinel.js';
import { RedisServer } from '../support/redis-server.js';
import { TcpProxy } from '../support/tcp-proxy.js';
import type { Fault, TopologyName } from './schedule.js';

export const PREFIX = 'safety:';
/** Waiters poll (and refresh their "wanted" / "writer waiting" marks) this often. */
export const POLL_INTERVAL = 150;

/** A Redis server is kept with its data across a SIGKILL: a restart is then a crash, not a wipe. */
const AOF = ['--appendonly', 'yes', '--appendfsync', 'no'];

export interface Topology {
  name: TopologyName;
  /** Processes (each with its own apps) and apps per process. */
  children: number;
  appsPerChild: number;
  /** LockModule options of app `app` (JSON: it goes to a child process). */
  options(app: number, child: number): LockModuleOptions;
  /** Ports of the servers that hold data, to look for leftovers at the end. */
  dataPorts(): number[];
  /** Injects one fault and resolves when it is over (the server is back, the process resumed...). */
  inject(fault: Fault, pauseChild: (child: number, paused: boolean) => void, mark: (edge: 'start' | 'end') => void): Promise<void>;
  stop(): Promise<void>;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

const base = (): LockModuleOptions => ({ prefix: PREFIX, pollInterval: POLL_INTERVAL, openTelemetry: false });

/** Network faults on one app's proxies. */
async function networkFault(proxies: TcpProxy[], fault: Fault, mark: (edge: 'start' | 'end') => void): Promise<void> {
  mark('start');
  try {
    if (fault.kind === 'delay') {
      for (const proxy of proxies) proxy.setLatency(fault.amount, 'toClient');
      await sleep(fault.durationMs);
    } else if (fault.kind === 'blackhole') {
      for (const proxy of proxies) proxy.blackhole(true);
      await sleep(fault.durationMs);
    } else if (fault.kind === 'cut') {
      // Replies are held back a little, so a cut loses replies to commands Redis already ran:
      // ioredis re-sends them on the new connection.
      for (const proxy of proxies) proxy.setLatency(60 + (fault.durationMs % 200), 'toClient');
      const cuts = Math.max(1, fault.amount);
      for (let i = 0; i < cuts; i++) {
        await sleep(fault.durationMs / (cuts + 1));
        for (const proxy of proxies) proxy.cutAll();
      }
      await sleep(fault.durationMs / (cuts + 1));
    }
  } finally {
    for (const proxy of proxies) {
      proxy.setLatency(0);
      proxy.blackhole(false);
    }
    mark('end');
  }
}

async function pauseFault(fault: Fault, pauseChild: (child: number, paused: boolean) => void, mark: (edge: 'start' | 'end') => void) {
  mark('start');
  pauseChild(fault.target, true);
  await sleep(fault.durationMs);
  pauseChild(fault.target, false);
  mark('end');
}

export async function startTopology(name: TopologyName): Promise<Topology> {
  switch (name) {
    case 'memory':
      return {
        name,
        children: 1,
        appsPerChild: 3,
        options: () => ({ ...base(), store: 'memory' }),
        dataPorts: () => [],
        inject: async () => undefined,
        stop: async () => undefined,
      };
    case 'single': {
      const server = await RedisServer.start({ args: AOF });
      const children = 3;
      const proxies = await Promise.all(Array.from({ length: children }, () => TcpProxy.start(server.port)));
      return {
        name,
        children,
        appsPerChild: 1,
        options: (_app, child) => ({ ...base(), redis: `redis://127.0.0.1:${proxies[child].port}` }),
        dataPorts: () => [server.port],
        async inject(fault, pauseChild, mark) {
          if (fault.kind === 'pause') return pauseFault(fault, pauseChild, mark);
          if (fault.kind === 'restart') {
            mark('start');
            await server.kill();
            await sleep(fault.durationMs);
            await server.restart();
            mark('end');
            return;
          }
          return networkFault([proxies[fault.target]], fault, mark);
        },
        async stop() {
          await Promise.all(proxies.map((proxy) => proxy.close()));
          await server.stop();
        },
      };
    }
    case 'redlock': {
      const masters = await RedisServer.startMany(3, { args: AOF });
      const children = 3;
      const proxies = await Promise.all(
        Array.from({ length: children }, () => Promise.all(masters.map((master) => TcpProxy.start(master.port)))),
      );
      return {
        name,
        children,
        appsPerChild: 1,
        options: (_app, child) => ({ ...base(), redlock: proxies[child].map((proxy) => `redis://127.0.0.1:${proxy.port}`) }),
        dataPorts: () => masters.map((master) => master.port),
        async inject(fault, pauseChild, mark) {
          if (fault.kind === 'pause') return pauseFault(fault, pauseChild, mark);
          if (fault.kind === 'killMaster' || fault.kind === 'killMajority') {
            const victims = fault.kind === 'killMaster' ? [masters[fault.target]] : [masters[fault.target], masters[(fault.target + 1) % 3]];
            mark('start');
            await Promise.all(victims.map((master) => master.kill()));
            await sleep(fault.durationMs);
            await Promise.all(victims.map((master) => master.restart()));
            mark('end');
            return;
          }
          return networkFault(proxies[fault.target], fault, mark);
        },
        async stop() {
          await Promise.all(proxies.flat().map((proxy) => proxy.close()));
          await Promise.all(masters.map((master) => master.stop()));
        },
      };
    }
    case 'sentinel': {
      const set = await RedisSentinelSet.start({ replicas: 1, sentinels: 3 });
      const replica = set.servers[1];
      return {
        name,
        children: 3,
        appsPerChild: 1,
        options: () => ({
          ...base(),
          redis: { sentinels: set.sentinelAddresses, name: set.masterName },
          waitForReplicas: 1,
          replicaTimeout: 100,
        }),
        dataPorts: () => [set.servers[0].port],
        async inject(fault, pauseChild, mark) {
          if (fault.kind === 'pause') return pauseFault(fault, pauseChild, mark);
          const pid = replica.pid;
          if (pid === undefined) return;
          process.kill(pid, 'SIGSTOP');
          mark('start');
          try {
            await sleep(fault.durationMs);
          } finally {
            mark('end');
            process.kill(pid, 'SIGCONT');
          }
        },
        stop: () => set.stop(),
      };
    }
    case 'cluster': {
      const cluster = await RedisCluster.start({ masters: 3 });
      return {
        name,
        children: 3,
        appsPerChild: 1,
        options: () => ({ ...base(), redis: { cluster: cluster.startupNodes } }),
        dataPorts: () => cluster.nodes.map((node) => node.port),
        inject: (fault, pauseChild, mark) => pauseFault(fault, pauseChild, mark),
        stop: () => cluster.stop(),
      };
    }
  }
}

/** Keys under the prefix left on a server (fence counters excluded: they must stay). */
export async function leftovers(port: number): Promise<string[]> {
  const found: string[] = [];
  let cursor = '0';
  do {
    const [next, keys] = (await adminCall(port, 'SCAN', cursor, 'MATCH', `${PREFIX}*`, 'COUNT', 1000)) as [string, string[]];
    cursor = next;
    for (const key of keys) if (!key.endsWith(':fence') && !key.startsWith(`${PREFIX}fences`)) found.push(key); // fence counters live on
  } while (cursor !== '0');
  const described: string[] = [];
  for (const key of found) {
    const pttl = await adminCall(port, 'PTTL', key);
    described.push(`${JSON.stringify(key)} (pttl ${String(pttl)})`);
  }
  return described;
}

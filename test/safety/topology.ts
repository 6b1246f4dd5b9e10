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
import * as redisScripts from '../../lib/stores/redis-scripts.js';
import { adminCall, adminTransaction } from '../support/redis-admin.js';
import { RedisCluster } from '../support/redis-cluster.js';
import { RedisSentinelSet } from '../support/redis-sentinel.js';
import { RedisServer } from '../support/redis-server.js';
import { TcpProxy } from '../support/tcp-proxy.js';
import { PREFIX, REDLOCK_HUNG_AFTER_MS, type Fault, type TopologyName } from './schedule.js';

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
  inject(fault: Fault, pauseChild: (child: number, paused: boolean) => void, mark: Mark): Promise<void>;
  stop(): Promise<void>;
}

/** Marks a fault's window in the history (the end may say what happened: e.g. how many replies were lost). */
export type Mark = (edge: 'start' | 'end', detail?: string) => void;

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

const base = (): LockModuleOptions => ({ prefix: PREFIX, pollInterval: POLL_INTERVAL, openTelemetry: false });

/**
 * A request carrying a semaphore or read-lock acquire: EVALSHA whose first key is a permits or
 * readers set and whose keys include a fence counter (extend and release carry no fence key).
 * Returns the owner token of the first one in the chunk (ARGV[1]), or undefined.
 */
export function sharedAcquireRequest(chunk: Buffer): string | undefined {
  return evalRequests(chunk).find(({ keys }) => /:(permits|readers)$/.test(keys[0] ?? '') && keys.some((key) => key.endsWith(':fence')))?.token;
}

/** The fence counters named by the acquire requests (EVALSHA) in a chunk. */
function fenceKeysOf(chunk: Buffer): string[] {
  return evalRequests(chunk).flatMap(({ keys }) => keys.filter((key) => key.endsWith(':fence')));
}

/** The keys and first argument of every EVALSHA / EVAL request in a chunk of RESP. */
function evalRequests(chunk: Buffer): Array<{ keys: string[]; token: string }> {
  const parts = chunk.toString('latin1').split('\r\n');
  const found: Array<{ keys: string[]; token: string }> = [];
  for (let i = 0; i + 6 < parts.length; i++) {
    if (!/^eval(sha)?$/i.test(parts[i])) continue;
    // EVALSHA, $40, sha, $n, numkeys, $len, key1, $len, key2, ..., $len, arg1
    const count = Number(parts[i + 4]) || 0;
    found.push({ keys: Array.from({ length: count }, (_, k) => parts[i + 6 + 2 * k] ?? ''), token: parts[i + 6 + 2 * count] ?? '' });
  }
  return found;
}

/** Every Lua script the library may send (its exported script texts). */
const LIBRARY_SCRIPTS = Object.entries(redisScripts)
  .filter(([name, text]) => name.endsWith('_SCRIPT') && typeof text === 'string')
  .map(([, text]) => text as string);

/**
 * Empties a server's script cache and loads back the scripts `roll` picks (about half of them),
 * in one transaction: until some client sends a missing one in full, those scripts meet NOSCRIPT
 * and the others run.
 */
async function keepPartOfScriptCache(port: number, roll: number): Promise<void> {
  let bits = Math.imul(roll, 0x9e3779b1) >>> 0;
  const kept = LIBRARY_SCRIPTS.filter(() => {
    bits = (Math.imul(bits, 1_103_515_245) + 12_345) >>> 0;
    return (bits >>> 16) % 2 === 0;
  });
  await adminTransaction(port, [['SCRIPT', 'FLUSH'], ...kept.map((text): [string, string, string] => ['SCRIPT', 'LOAD', text])]);
}

/**
 * Network faults on one app's proxies. `servers` (ports) lose part of their script cache again and
 * again during `lostScripts`: a missing script meets NOSCRIPT until someone sends it in full again,
 * and a re-sent script runs after whatever went out meanwhile.
 */
async function networkFault(proxies: TcpProxy[], fault: Fault, mark: Mark, servers: number[] = []): Promise<void> {
  mark('start');
  let detail: string | undefined;
  try {
    if (fault.kind === 'delay') {
      for (const proxy of proxies) proxy.setLatency(fault.amount, 'toClient');
      await sleep(fault.durationMs);
    } else if (fault.kind === 'lostScripts') {
      // Replies to this app turn slow (often past its ttl: grants are refused and given back) and
      // fast again, step by step. Most fast steps are longer than the library's pause before a
      // retry (100 ms) but shorter than the ttls: the NOSCRIPT answer to a give-back then
      // comes back after the retry was sent, and ioredis re-sends the give-back behind it, while
      // the retry's grant still arrives in time. Meanwhile, every 5-20 ms, the servers lose their
      // script cache and get back a random part of it at once (as after a failover, where the
      // scripts in use come back one by one): a give-back can meet NOSCRIPT while the retry's
      // script is known.
      const until = Date.now() + fault.durationMs;
      let steps = 0;
      let flushes = 0;
      while (Date.now() < until) {
        const latency = steps % 2 === 0 ? fault.amount : [130, 10, 220, 170][(fault.amount + steps) % 4];
        // Redlock (one proxy per master): one master's replies, in turn, lag behind the others'. A
        // quorum then decides, and the caller may release, before that master's NOSCRIPT answer to
        // the attempt is back: the attempt, re-sent in full, runs there after the release.
        const lagging = servers.length > 1 ? steps % proxies.length : -1;
        proxies.forEach((proxy, i) => proxy.setLatency(latency + (i === lagging ? 150 : 0), 'toClient'));
        const stepEnds = Math.min(until, Date.now() + 60 + ((fault.amount + 37 * steps) % 240));
        while (Date.now() < stepEnds) {
          await Promise.all(servers.map((port) => keepPartOfScriptCache(port, fault.amount * 31 + flushes)));
          flushes++;
          await sleep(5 + ((fault.amount + 13 * flushes) % 15));
        }
        steps++;
      }
      detail = `${flushes} script cache flushes, each keeping a random part of the library's scripts`;
    } else if (fault.kind === 'blackhole') {
      for (const proxy of proxies) proxy.blackhole(true);
      await sleep(fault.durationMs);
    } else if (fault.kind === 'cutReply') {
      // Again and again, on every proxy given (on a single Redis: every app's), on its own: the
      // reply of a semaphore or read acquire is held back (the acquire ran in Redis), until another
      // app sends an acquire naming the same fence counter (or a random while passes), and a
      // moment later the connection is cut with the reply. ioredis re-sends the attempt after the
      // others went on taking the key: it must answer with the fence it was given.
      const until = Date.now() + fault.durationMs;
      let lost = 0;
      let contended = 0;
      // An attempt loses its reply once: its re-sent copy must get through, or the caller just
      // times out (nothing to check then).
      const tokens = new Set<string>();
      const match = (chunk: Buffer) => {
        const token = sharedAcquireRequest(chunk);
        return token !== undefined && !tokens.has(token);
      };
      await Promise.all(
        proxies.map(async (proxy, i) => {
          let roll = fault.amount + 7_919 * i;
          while (Date.now() < until) {
            roll = (roll * 1_103_515_245 + 12_345) % 2_147_483_648;
            const hit = await Promise.race([proxy.loseReply(match), sleep(until - Date.now()).then(() => undefined)]);
            proxy.disarm();
            if (!hit) break;
            tokens.add(sharedAcquireRequest(hit.request) as string);
            const fences = fenceKeysOf(hit.request);
            const others = await new Promise<boolean>((resolve) => {
              const stops: Array<() => void> = [];
              let settled = false;
              const done = (seen: boolean) => {
                if (settled) return;
                settled = true;
                clearTimeout(timer);
                stops.forEach((stop) => stop());
                setTimeout(() => resolve(seen), seen ? 5 + (roll % 20) : 0);
              };
              const timer = setTimeout(() => done(false), 20 + (roll % 150));
              for (const other of proxies) {
                if (other === proxy) continue;
                stops.push(other.watchRequests((chunk) => fenceKeysOf(chunk).some((key) => fences.includes(key)) && done(true)));
              }
            });
            hit.cut();
            lost++;
            if (others) contended++;
            await sleep(20 + (roll % 100));
          }
        }),
      );
      detail = `${lost} replies lost (${contended} while another app asked for the key)`;
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
    mark('end', detail);
  }
}

/** SIGSTOP a Redis server for the fault's duration (its connections stay open), then SIGCONT. */
async function stopServerFor(server: RedisServer, fault: Fault, mark: Mark): Promise<void> {
  const pid = server.pid;
  if (pid === undefined) return;
  process.kill(pid, 'SIGSTOP');
  mark('start');
  try {
    await sleep(fault.durationMs);
  } finally {
    mark('end');
    process.kill(pid, 'SIGCONT');
  }
}

async function pauseFault(fault: Fault, pauseChild: (child: number, paused: boolean) => void, mark: Mark) {
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
          // cutReply hits every app (target -1): each loses replies while the others take the same keys.
          return networkFault(fault.kind === 'cutReply' ? proxies : [proxies[fault.target]], fault, mark, [server.port]);
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
        options: (_app, child) => ({
          ...base(),
          redlock: proxies[child].map((proxy) => `redis://127.0.0.1:${proxy.port}`),
          redlockHungAfter: REDLOCK_HUNG_AFTER_MS,
        }),
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
          if (fault.kind === 'hangMaster') return stopServerFor(masters[fault.target], fault, mark);
          return networkFault(proxies[fault.target], fault, mark, masters.map((master) => master.port));
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
          return stopServerFor(replica, fault, mark);
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

/**
 * The exclusive holds on one server right now, as [key, owner token] pairs: every key of the run's
 * prefix whose string value is `<token>:<fence>` (markers hold "1", fence counters a plain number).
 * One script, so one consistent look at the server.
 */
const SAMPLE_HOLDS_LUA = `
local out = {}
for _, key in ipairs(redis.call('KEYS', ARGV[1])) do
  if redis.call('TYPE', key).ok == 'string' then
    local value = redis.call('GET', key)
    local token = value and string.match(value, '^(%x+):%d+')
    if token then
      out[#out + 1] = key
      out[#out + 1] = token
    end
  end
end
return out`;

export async function sampleHolds(port: number): Promise<Array<[string, string]>> {
  const flat = (await adminCall(port, 'EVAL', SAMPLE_HOLDS_LUA, 0, `${PREFIX}*`)) as string[];
  const pairs: Array<[string, string]> = [];
  for (let i = 0; i + 1 < flat.length; i += 2) pairs.push([flat[i], flat[i + 1]]);
  return pairs;
}

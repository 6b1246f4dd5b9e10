/**
 * Scenarios G (garbage left in Redis), R (Redlock with a master down) and "A cold" (first pairs
 * in a fresh process). Each takes adapters (see adapters.mjs) and returns plain figures.
 */
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { median, now, percentile } from './measure.mjs';
import { randomKeys } from './scenarios.mjs';

// ---------------------------------------------------------------------------------------------
// G: distinct keys locked and released once: what stays in Redis
// ---------------------------------------------------------------------------------------------

async function memoryInfo(admin) {
  const info = await admin.info('memory');
  return Number(/^used_memory:(\d+)/m.exec(info)?.[1] ?? NaN);
}

/** Keys in db0 and how many of them carry a TTL (INFO keyspace), i.e. will go by themselves. */
async function keyspace(admin) {
  const info = await admin.info('keyspace');
  const match = /^db0:keys=(\d+),expires=(\d+)/m.exec(info);
  return match ? { keys: Number(match[1]), expires: Number(match[2]) } : { keys: 0, expires: 0 };
}

/**
 * `count` distinct keys, each locked and released once (64 loops at once, to keep it quick).
 * Run on an emptied Redis; "left" = DBSIZE after the last release, "persistent" = keys without a
 * TTL (left forever), growth = used_memory after − before (after waiting for any TTL to run out,
 * up to `settleMs`).
 */
export async function garbage(adapter, { count, admin, loops = 64, settleMs = 3_000 }) {
  await admin.flushall();
  await admin.call('MEMORY', 'PURGE').catch(() => undefined);
  const before = await memoryInfo(admin);
  const perLoop = Math.ceil(count / loops);
  const start = now();
  await Promise.all(
    Array.from({ length: loops }, async (_, l) => {
      const keys = randomKeys(`g${l}`, Math.min(perLoop, Math.max(0, count - l * perLoop)));
      for (const key of keys) await adapter.release(await adapter.acquire(key));
    }),
  );
  const elapsed = now() - start;
  const rightAfter = await keyspace(admin);
  // Leases gone: wait for keys with a TTL to expire (bounded).
  const deadline = now() + settleMs;
  let space = rightAfter;
  while (space.expires > 0 && now() < deadline) {
    await sleep(100);
    space = await keyspace(admin);
  }
  await admin.call('MEMORY', 'PURGE').catch(() => undefined);
  const after = await memoryInfo(admin);
  const sample = rightAfter.keys > 0 ? (await admin.scan(0, 'COUNT', 10))[1].slice(0, 3) : [];
  return {
    count,
    elapsedMs: elapsed,
    keysRightAfter: rightAfter.keys,
    keysLeft: space.keys,
    persistent: space.keys - space.expires,
    growthBytes: after - before,
    sample,
  };
}

// ---------------------------------------------------------------------------------------------
// R: Redlock over 3 masters, one of them down
// ---------------------------------------------------------------------------------------------

/**
 * Adapters here have: acquire(key) → handle, release(handle), probe(key) → 'busy' | 'unavailable'
 * | 'acquired' (one try, no waiting). Phases: all up, one master SIGSTOPped (connection open, no
 * answers: a hung master), the same master SIGKILLed (connection dropped).
 */
export async function redlockDown(adapters, { servers, pairs, probes, held }) {
  const results = Object.fromEntries(adapters.map((a) => [a.name, {}]));
  const holds = new Map();
  const measurePhase = async (phase) => {
    for (const adapter of adapters) {
      console.error(`  R ${phase}: ${adapter.name}`);
      const latencies = [];
      const keys = randomKeys(`r-${phase}`, pairs);
      let failures = 0;
      for (const key of keys) {
        const t = now();
        let handle;
        try {
          handle = await adapter.acquire(key);
        } catch {
          failures += 1;
          if (failures >= 3) break; // e.g. 5 s per call behind a hung master: enough to know
          continue;
        }
        latencies.push(now() - t);
        await adapter.release(handle).catch(() => undefined);
      }
      const outcomes = { busy: 0, unavailable: 0, acquired: 0 };
      const probeMs = [];
      for (let i = 0; i < probes; i++) {
        const t = now();
        const outcome = await adapter.probe(`${held}`);
        probeMs.push(now() - t);
        outcomes[outcome] += 1;
        if (outcomes.unavailable >= 3) break;
      }
      results[adapter.name][phase] = {
        acquireP50: percentile(latencies, 0.5),
        acquireP99: percentile(latencies, 0.99),
        failures,
        probes: probeMs.length,
        probeP50: median(probeMs),
        probeMax: Math.max(...probeMs),
        outcomes,
      };
    }
  };
  for (const adapter of adapters) holds.set(adapter, await adapter.acquire(held));
  await measurePhase('allUp');
  const victim = servers[servers.length - 1];
  victim.child.kill('SIGSTOP');
  try {
    await sleep(200);
    await measurePhase('hung');
  } finally {
    victim.child.kill('SIGCONT');
  }
  victim.child.kill('SIGKILL');
  await victim.exited;
  await sleep(300);
  await measurePhase('down');
  for (const [adapter, handle] of holds) await adapter.release(handle).catch(() => undefined);
  return results;
}

// ---------------------------------------------------------------------------------------------
// A cold: first pairs in a fresh process
// ---------------------------------------------------------------------------------------------

const COLD_SCRIPT = fileURLToPath(new URL('./cold.mjs', import.meta.url));

function coldRun(lib, url, pairs) {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [COLD_SCRIPT, lib, url, String(pairs)], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.on('data', (chunk) => (out += chunk));
    child.once('error', reject);
    child.once('close', (code) => {
      if (code !== 0) return reject(new Error(`cold run of ${lib} exited with ${code}`));
      resolve(JSON.parse(out));
    });
  });
}

/** `rounds` fresh processes per library (rotating order), each timing its first `pairs` pairs; medians. */
export async function coldPairs(libNames, { url, pairs, rounds }) {
  const runs = Object.fromEntries(libNames.map((n) => [n, []]));
  for (let r = 0; r < rounds; r++) {
    const order = [...libNames.slice(r % libNames.length), ...libNames.slice(0, r % libNames.length)];
    for (const lib of order) runs[lib].push(await coldRun(lib, url, pairs));
  }
  return Object.fromEntries(
    Object.entries(runs).map(([lib, list]) => [
      lib,
      {
        opsPerSec: median(list.map((run) => run.opsPerSec)),
        p50: median(list.map((run) => run.p50)),
        p99: median(list.map((run) => run.p99)),
        firstMs: median(list.map((run) => run.firstMs)),
        rounds: list.length,
      },
    ]),
  );
}

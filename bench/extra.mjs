/**
 * Scenarios G (garbage left in Redis), R (Redlock with a master down) and "A cold" (first pairs
 * in a fresh process). Each takes adapters (see adapters.mjs) and returns plain figures.
 */
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { median, now, percentile, rotate } from './measure.mjs';
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
 *
 * A phase's acquisitions are spread over `blocks` blocks (the libraries taking turns, rotating who
 * goes first), and the all-up and hung blocks alternate (SIGSTOP, SIGCONT, again): one phase of
 * 500 pairs lasts about 0.2 s, so a moment of load on the VM could move a whole phase's p50, and
 * with it the ratio to the all-up phase. The killed master cannot come back, so the down blocks
 * come last, 100 ms apart. The busy probes run once per phase, in its last block.
 */
export async function redlockDown(adapters, { servers, pairs, probes, held, blocks }) {
  const latencies = new Map(adapters.map((a) => [a, { allUp: [], hung: [], down: [] }]));
  const failures = new Map(adapters.map((a) => [a, { allUp: 0, hung: 0, down: 0 }]));
  const probed = new Map(adapters.map((a) => [a, {}]));
  const holds = new Map();
  const perBlock = Math.max(1, Math.round(pairs / blocks));
  const measureBlock = async (phase, block) => {
    for (const adapter of rotate(adapters, block)) {
      const keys = randomKeys(`r-${phase}`, perBlock);
      for (const key of keys) {
        // e.g. 5 s per call behind a hung master: three failures are enough to know
        if (failures.get(adapter)[phase] >= 3) break;
        const t = now();
        let handle;
        try {
          handle = await adapter.acquire(key);
        } catch {
          failures.get(adapter)[phase] += 1;
          continue;
        }
        latencies.get(adapter)[phase].push(now() - t);
        await adapter.release(handle).catch(() => undefined);
      }
    }
  };
  const probePhase = async (phase) => {
    for (const adapter of adapters) {
      console.error(`  R ${phase} probes: ${adapter.name}`);
      const outcomes = { busy: 0, unavailable: 0, acquired: 0 };
      const probeMs = [];
      for (let i = 0; i < probes; i++) {
        const t = now();
        const outcome = await adapter.probe(`${held}`);
        probeMs.push(now() - t);
        outcomes[outcome] += 1;
        if (outcomes.unavailable >= 3) break;
      }
      probed.get(adapter)[phase] = { probes: probeMs.length, probeP50: median(probeMs), probeMax: Math.max(...probeMs), outcomes };
    }
  };
  for (const adapter of adapters) holds.set(adapter, await adapter.acquire(held));
  const victim = servers[servers.length - 1];
  for (let block = 0; block < blocks; block++) {
    console.error(`  R all up / hung, block ${block + 1} of ${blocks}`);
    await measureBlock('allUp', block);
    if (block === blocks - 1) await probePhase('allUp');
    victim.child.kill('SIGSTOP');
    try {
      await sleep(200);
      await measureBlock('hung', block);
      if (block === blocks - 1) await probePhase('hung');
    } finally {
      victim.child.kill('SIGCONT');
    }
    await sleep(100);
  }
  victim.child.kill('SIGKILL');
  await victim.exited;
  await sleep(300);
  for (let block = 0; block < blocks; block++) {
    console.error(`  R down, block ${block + 1} of ${blocks}`);
    await measureBlock('down', block);
    await sleep(100);
  }
  await probePhase('down');
  for (const [adapter, handle] of holds) await adapter.release(handle).catch(() => undefined);
  return Object.fromEntries(
    adapters.map((adapter) => [
      adapter.name,
      Object.fromEntries(
        ['allUp', 'hung', 'down'].map((phase) => [
          phase,
          {
            acquireP50: percentile(latencies.get(adapter)[phase], 0.5),
            acquireP99: percentile(latencies.get(adapter)[phase], 0.99),
            failures: failures.get(adapter)[phase],
            ...probed.get(adapter)[phase],
          },
        ]),
      ),
    ]),
  );
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
    for (const lib of rotate(libNames, r)) runs[lib].push(await coldRun(lib, url, pairs));
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

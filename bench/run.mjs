#!/usr/bin/env node
/**
 * `npm run bench`: nestjs-redis-lock against the raw floor (SET NX PX + compare-and-delete
 * script), redlock 5 and redis-semaphore (Mutex; Semaphore in F), in one process and one run, on a private redis-server
 * (free port, never 6379) that is stopped at the end. Prints a table per scenario and writes the
 * same to BENCHMARKS.md. Needs the built library (dist/) and node --expose-gc. `npm run bench`
 * runs it through bench/all.mjs, once per Node version, and writes BENCHMARKS.md from both runs.
 *
 *   node --expose-gc bench/run.mjs [--quick] [--only A,G] [--out file] [--json file]
 *     --quick: a tenth of the work, for a smoke test; does not write BENCHMARKS.md
 *     --only:  run only these scenarios (A, Acold, B, C, D, E, F, G, R); does not write BENCHMARKS.md
 *     --out:   write the report (without bench/ANALYSIS.md) to this file instead, even with --quick/--only
 *     --json:  also write { node, quick, only, targets: [{ what, value, met }] } there (for bench/all.mjs)
 */
import 'reflect-metadata';
import fs from 'node:fs';
import os from 'node:os';
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';
import { Injectable, Module } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { LockModule, LockService, WithLock } from 'nestjs-redis-lock';
import { oursAdapter, oursFairAdapter, rawAdapter, redlockAdapter, semaphoreAdapter } from './adapters.mjs';
import { clientRequests, counterDelta, counters, medianOfRounds, now, percentile, rotate } from './measure.mjs';
import { fmt, ratio, table } from './report.mjs';
import { RedisServer, redisServerVersion } from './redis-server.mjs';
import { coldPairs, garbage, redlockDown } from './extra.mjs';
import {
  C_HOLD_MS,
  C_OFF_LOCK_MS,
  C_WAIT_MS,
  F_HOLD_MS,
  F_OFF_LOCK_MS,
  F_WAIT_MS,
  concurrentPairs,
  contended,
  decoratorOverhead,
  manyHeld,
  randomKeys,
  semaphoreContended,
  serialPairs,
} from './scenarios.mjs';

const QUICK = process.argv.includes('--quick');
const ALL_SCENARIOS = ['A', 'Acold', 'B', 'C', 'D', 'E', 'F', 'G', 'R'];
/** The value of `--name value` or `--name=value`, undefined when absent. */
function optionValue(name) {
  const i = process.argv.findIndex((a) => a === name || a.startsWith(`${name}=`));
  if (i < 0) return undefined;
  const value = process.argv[i].includes('=') ? process.argv[i].slice(name.length + 1) : process.argv[i + 1];
  if (!value || value.startsWith('--')) throw new Error(`${name} needs a value`);
  return value;
}
const OUT_FILE = optionValue('--out');
const JSON_FILE = optionValue('--json');
const onlyArg = (() => {
  const value = optionValue('--only');
  if (value === undefined) return undefined;
  const list = (value ?? '').split(',').map((x) => x.trim()).filter(Boolean);
  const unknown = list.filter((x) => !ALL_SCENARIOS.includes(x));
  if (unknown.length > 0 || list.length === 0) throw new Error(`--only takes a comma-separated list of ${ALL_SCENARIOS.join(', ')}; got "${value}"`);
  return new Set(list);
})();
/** Whether a scenario runs in this invocation. */
const want = (name) => !onlyArg || onlyArg.has(name);
/** BENCHMARKS.md only from a full run with no --out: a partial run would overwrite the real figures. */
const WRITE_REPORT = !QUICK && !onlyArg && !OUT_FILE;
const scale = (n) => (QUICK ? Math.max(1, Math.round(n / 10)) : n);
const SIZE = {
  A: scale(10_000),
  B: scale(30_000),
  B_LOOPS: 64,
  C: scale(500),
  C_WORKERS: [16, 32],
  D: scale(5_000),
  E: scale(10_000),
  E_TTL: 3_000,
  E_WINDOW: QUICK ? 1_500 : 6_000,
  F: scale(800),
  F_WORKERS: 16,
  F_PERMITS: 4,
  G: scale(100_000),
  R_PAIRS: scale(500),
  R_PROBES: QUICK ? 5 : 20,
  R_BLOCKS: 10,
  COLD_PAIRS: 1_000,
  COLD_ROUNDS: QUICK ? 1 : 5,
};
/** A and B are split into rounds, the libraries taking turns (rotating who goes first): the machine's drift hits all alike. */
const ROUNDS = 10;
/**
 * C and F (contended) run whole, several times, the libraries taking turns (rotating who goes
 * first); each figure is the median of its rounds. One round's ratio moved by a third between
 * runs: the VM's load, and peers that poll (redlock's random retry delay, redis-semaphore's 10 ms).
 */
const CONTENDED_ROUNDS = QUICK ? 1 : 3;
const RUN_DEADLINE_MS = 8 * 60_000;

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const versionOf = (name) => {
  const file = name === 'nestjs-redis-lock' ? `${ROOT}/package.json` : `${ROOT}/node_modules/${name}/package.json`;
  return JSON.parse(fs.readFileSync(file, 'utf8')).version.replace(/^v/, '');
};
const BENCHMARKS_MD = fileURLToPath(new URL('../BENCHMARKS.md', import.meta.url));

const log = (...args) => console.error(...args);
const gc = () => globalThis.gc();

// ---------------------------------------------------------------------------------------------
// Nest app for "ours", with a decorated provider for scenario D
// ---------------------------------------------------------------------------------------------

class DecoratedWorker {
  work(id) {
    return id;
  }
}
// @WithLock('d:<0>') applied by hand (plain JS has no decorator syntax): positional, so the
// parameter names the decorator reads from the source are not needed.
{
  const descriptor = Object.getOwnPropertyDescriptor(DecoratedWorker.prototype, 'work');
  WithLock('d:<0>')(DecoratedWorker.prototype, 'work', descriptor);
  Object.defineProperty(DecoratedWorker.prototype, 'work', descriptor);
  Injectable()(DecoratedWorker);
}

function benchModule(url) {
  class BenchModule {}
  Module({ imports: [LockModule.forRoot({ redis: url })], providers: [DecoratedWorker] })(BenchModule);
  return BenchModule;
}

// ---------------------------------------------------------------------------------------------

async function main(resources) {
  if (typeof globalThis.gc !== 'function') throw new Error('run with node --expose-gc (npm run bench does)');
  const startedAt = new Date();
  const loadBefore = os.loadavg();
  const t0 = now();

  const server = await RedisServer.start();
  resources.server = server;
  log(`redis-server ${redisServerVersion()} on ${server.url}`);

  const client = () => {
    const redis = new Redis(server.url, { lazyConnect: false });
    resources.clients.push(redis);
    return redis;
  };
  const admin = client();
  const raw = rawAdapter(client());
  const semaphore = semaphoreAdapter(client());
  const redlock = redlockAdapter(client());
  const app = await NestFactory.createApplicationContext(benchModule(server.url), { logger: ['error', 'warn'] });
  resources.app = app;
  const locks = app.get(LockService);
  const ours = oursAdapter(locks);
  const worker = app.get(DecoratedWorker);
  await Promise.all(resources.clients.map((redis) => redis.ping()));

  const libs = [raw, semaphore, redlock, ours];
  const results = { A: undefined, Acold: undefined, B: undefined, C: undefined, D: undefined, E: undefined, F: undefined, G: undefined, R: undefined };
  /** F runs only the libraries with a counting semaphore; redis-semaphore (Semaphore) is its reference. */
  const semaphoreLibs = [semaphore, ours];

  // Warm-up: every code path once (scripts loaded into Redis, JIT), not measured.
  log('warm-up');
  for (const lib of libs) {
    await serialPairs(lib, randomKeys('w', 500));
    await concurrentPairs(lib, Array.from({ length: 16 }, () => randomKeys('w', 30)));
    await contended(lib, { workers: 8, total: 40, key: 'warm' });
  }
  await admin.flushall();

  // A: serial --------------------------------------------------------------------------------
  if (want('A')) {
  results.A = {};
  log(`A: serial, ${SIZE.A} acquire+release per library`);
  const aKeys = randomKeys('a', SIZE.A);
  const aAcc = new Map(libs.map((lib) => [lib, { elapsed: 0, latencies: [], server: 0, client: 0, perCommand: {}, rounds: [], roundCmds: [] }]));
  for (let r = 0; r < ROUNDS; r++) {
    const part = aKeys.slice((r * SIZE.A) / ROUNDS, ((r + 1) * SIZE.A) / ROUNDS);
    for (const lib of rotate(libs, r)) {
      gc();
      const before = await counters(admin);
      const { elapsed, latencies } = await serialPairs(lib, part);
      const delta = counterDelta(before, await counters(admin));
      const acc = aAcc.get(lib);
      acc.elapsed += elapsed;
      acc.latencies.push(...latencies);
      acc.rounds.push((latencies.length / elapsed) * 1000);
      acc.roundCmds.push(delta.server / latencies.length);
      acc.server += delta.server;
      acc.client += delta.client;
      for (const [cmd, n] of Object.entries(delta.perCommand)) acc.perCommand[cmd] = (acc.perCommand[cmd] ?? 0) + n;
    }
  }
  for (const [lib, acc] of aAcc) {
    const pairs = acc.latencies.length;
    results.A[lib.name] = {
      opsPerSec: (pairs / acc.elapsed) * 1000,
      medianRoundOpsPerSec: percentile(acc.rounds, 0.5),
      p50: percentile(acc.latencies, 0.5),
      p99: percentile(acc.latencies, 0.99),
      cmdsPerPair: acc.server / pairs,
      // Per round, the median: a background write (ours: the instance record, one SET per ttl/3) lands in one round at most.
      medianRoundCmdsPerPair: percentile(acc.roundCmds, 0.5),
      reqPerPair: acc.client / pairs,
      perCommand: Object.fromEntries(Object.entries(acc.perCommand).map(([cmd, n]) => [cmd, n / pairs])),
    };
  }
  log(`  ${JSON.stringify(results.A)}`);
  await admin.flushall();
  }

  // A cold: fresh processes ----------------------------------------------------------------------
  if (want('Acold')) {
    log(`A cold: first ${SIZE.COLD_PAIRS} pairs in a fresh process, ${SIZE.COLD_ROUNDS} rounds per library`);
    results.Acold = await coldPairs(libs.map((lib) => lib.name), { url: server.url, pairs: SIZE.COLD_PAIRS, rounds: SIZE.COLD_ROUNDS });
    log(`  ${JSON.stringify(results.Acold)}`);
    await admin.flushall();
  }

  // B: concurrent ------------------------------------------------------------------------------
  if (want('B')) {
  results.B = {};
  log(`B: ${SIZE.B_LOOPS} concurrent loops, ${SIZE.B} pairs per library`);
  const bAcc = new Map(libs.map((lib) => [lib, { elapsed: 0, latencies: [] }]));
  const perRound = SIZE.B / ROUNDS;
  for (let r = 0; r < ROUNDS; r++) {
    const loops = Array.from({ length: SIZE.B_LOOPS }, (_, i) =>
      randomKeys(`b${i}`, Math.floor(perRound / SIZE.B_LOOPS) + (i < perRound % SIZE.B_LOOPS ? 1 : 0)),
    );
    for (const lib of rotate(libs, r)) {
      gc();
      const { elapsed, latencies } = await concurrentPairs(lib, loops);
      const acc = bAcc.get(lib);
      acc.elapsed += elapsed;
      acc.latencies.push(...latencies);
    }
  }
  for (const [lib, acc] of bAcc) {
    results.B[lib.name] = {
      opsPerSec: (acc.latencies.length / acc.elapsed) * 1000,
      p50: percentile(acc.latencies, 0.5),
      p99: percentile(acc.latencies, 0.99),
    };
  }
  await admin.flushall();
  }

  // C: contended -------------------------------------------------------------------------------
  const oursFair = oursFairAdapter(locks);
  if (want('C')) {
  results.C = {};
  // Warm-up right before, as for F: the whole C workload once per library, unmeasured. The general
  // warm-up (40 acquisitions) left ours' waiting path (queue, grant, handoff) cold: in a probe, the
  // process's CPU per acquisition fell from 1.2 ms to 0.34 ms over the first 4,500 (rounds of
  // 500, 605 → 749 acq/s). Redlock's figure is its retry delay, warm or not.
  log(`C: warm-up, ${SIZE.C} acquisitions per library`);
  try {
    await contended(oursFair, { workers: 8, total: 40, key: 'warm-fair' });
  } catch (error) {
    log(`C: fair mode unavailable, row skipped: ${error?.message ?? error}`);
  }
  for (const lib of [...libs, oursFair]) {
    await contended(lib, { workers: SIZE.C_WORKERS[0], total: SIZE.C, key: 'warm-c' }).catch((error) => {
      if (lib !== oursFair) throw error;
    });
  }
  await admin.flushall();
  for (const workers of SIZE.C_WORKERS) {
    results.C[workers] = await contendedRounds(
      [...libs, oursFair],
      `C: ${workers} workers on one key, ${SIZE.C} acquisitions`,
      (lib) => contended(lib, { workers, total: SIZE.C, key: `c${workers}`, admin }),
      oursFair,
    );
  }
  await admin.flushall();
  }

  // D: decorator ---------------------------------------------------------------------------------
  if (want('D')) {
  log(`D: @WithLock vs withLock, ${SIZE.D} calls each`);
  gc();
  results.D = await decoratorOverhead(
    {
      decorated: (key) => worker.work(key),
      direct: (key) => locks.withLock(`d:${key}`, () => key),
      reference: async (key) => raw.release(await raw.acquire(`d:${key}`)),
    },
    { calls: SIZE.D },
  );
  await admin.flushall();
  }

  // E: scale -------------------------------------------------------------------------------------
  if (want('E')) {
  results.E = {};
  for (const lib of libs) {
    log(`E: ${SIZE.E} locks held at once, ttl ${SIZE.E_TTL}, ${SIZE.E_WINDOW} ms window: ${lib.name}`);
    results.E[lib.name] = await manyHeld(lib, {
      count: SIZE.E,
      ttl: SIZE.E_TTL,
      windowMs: SIZE.E_WINDOW,
      admin,
      leaseStats: lib === ours ? () => locks.leaseStats : undefined,
    });
    await admin.flushall();
  }
  }
  results.ourLeaseStatsAtEnd = locks.leaseStats;

  // F: semaphore ---------------------------------------------------------------------------------
  if (want('F')) {
  // Warm-up right before: the whole F workload once per library, unmeasured (a short warm-up left
  // ours' first measured run at about twice the CPU per acquisition of later ones: JIT).
  log(`F: warm-up, ${SIZE.F} acquisitions per library`);
  for (const lib of semaphoreLibs) {
    await semaphoreContended(lib, { workers: SIZE.F_WORKERS, permits: SIZE.F_PERMITS, total: SIZE.F, key: 'warm-f' });
  }
  await admin.flushall();
  results.F = await contendedRounds(
    semaphoreLibs,
    `F: ${SIZE.F_WORKERS} workers on one key, permits ${SIZE.F_PERMITS}, ${SIZE.F} acquisitions`,
    (lib) => semaphoreContended(lib, { workers: SIZE.F_WORKERS, permits: SIZE.F_PERMITS, total: SIZE.F, key: 'f', admin }),
  );
  await admin.flushall();
  }

  // G: garbage -----------------------------------------------------------------------------------
  if (want('G')) {
    results.G = {};
    for (const lib of libs) {
      log(`G: ${SIZE.G} distinct keys locked and released once: ${lib.name}`);
      results.G[lib.name] = await garbage(lib, { count: SIZE.G, admin });
      log(`  ${JSON.stringify(results.G[lib.name])}`);
    }
    await admin.flushall();
  }

  // R: Redlock with a master down ------------------------------------------------------------------
  if (want('R')) {
    log(`R: Redlock over 3 masters (all up, one hung, one down), ${SIZE.R_PAIRS} free-key acquisitions and ${SIZE.R_PROBES} busy probes per phase`);
    // From a collected heap, as the other scenarios: G leaves 100,000 keys' worth of garbage.
    gc();
    results.R = await redlockScenario(resources);
    log(`  ${JSON.stringify(results.R)}`);
  }

  const elapsedS = (now() - t0) / 1000;
  const env = {
    date: startedAt.toISOString(),
    command: commandLine(),
    node: process.version,
    redis: redisServerVersion(),
    cpu: os.cpus()[0]?.model ?? 'unknown',
    cores: os.cpus().length,
    platform: `${os.type()} ${os.release()} ${os.arch()}`,
    versions: {
      'nestjs-redis-lock': versionOf('nestjs-redis-lock'),
      redlock: versionOf('redlock'),
      'redis-semaphore': versionOf('redis-semaphore'),
      ioredis: versionOf('ioredis'),
      '@nestjs/core': versionOf('@nestjs/core'),
    },
    elapsedS,
    load: `${loadBefore.map((l) => l.toFixed(2)).join(' / ')} before, ${os.loadavg().map((l) => l.toFixed(2)).join(' / ')} after (1/5/15 min)`,
    settings: Object.fromEntries([...libs, oursFair].map((lib) => [lib.name, { C: lib.settingsC, E: lib.settingsE, F: lib.settingsF }])),
  };
  const markdown = render(results, env);
  console.log(markdown);
  if (WRITE_REPORT) {
    fs.writeFileSync(BENCHMARKS_MD, `${markdown}\n${analysisSection()}`);
    log(`wrote ${BENCHMARKS_MD}`);
  }
  // The analysis is left to whoever assembles --out files (bench/all.mjs appends it once).
  if (OUT_FILE) {
    fs.writeFileSync(OUT_FILE, `${markdown}\n`);
    log(`wrote ${OUT_FILE}`);
  }
  if (JSON_FILE) {
    const summary = { node: process.version, quick: QUICK, only: onlyArg ? [...onlyArg] : null, targets: targets(results) };
    fs.writeFileSync(JSON_FILE, `${JSON.stringify(summary, null, 2)}\n`);
    log(`wrote ${JSON_FILE}`);
  }
  log(`done in ${elapsedS.toFixed(1)} s; client requests counted: ${clientRequests.count}`);
}

/** This invocation as typed, less --out/--json (temporary files of bench/all.mjs, noise in the report). */
function commandLine() {
  const args = [];
  const argv = process.argv.slice(2);
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--out' || argv[i] === '--json') i += 1;
    else if (!argv[i].startsWith('--out=') && !argv[i].startsWith('--json=')) args.push(argv[i]);
  }
  return ['node', ...process.execArgv, 'bench/run.mjs', ...args].join(' ');
}

/**
 * Runs `measure(lib)` CONTENDED_ROUNDS times per library, the libraries taking turns (rotating who
 * goes first), and returns each library's row of medians. `optional` (a library that may be
 * unavailable) is dropped, its row skipped, if it fails; any other failure ends the run.
 */
async function contendedRounds(libs, label, measure, optional) {
  let runners = [...libs];
  const rounds = new Map(libs.map((lib) => [lib.name, []]));
  for (let r = 0; r < CONTENDED_ROUNDS; r++) {
    for (const lib of rotate(runners, r)) {
      log(`${label}, round ${r + 1} of ${CONTENDED_ROUNDS}: ${lib.name}`);
      gc();
      try {
        rounds.get(lib.name).push(await measure(lib));
      } catch (error) {
        if (lib !== optional) throw error;
        log(`${label}: ${lib.name} failed, row skipped: ${error?.message ?? error}`);
        runners = runners.filter((other) => other !== lib);
      }
    }
  }
  return Object.fromEntries(runners.map((lib) => [lib.name, medianOfRounds(rounds.get(lib.name))]));
}

/** How the contended rows (C, F) were made from their rounds. */
function roundsNote(scenario) {
  return `- ${scenario} ran ${CONTENDED_ROUNDS} times per library, the libraries taking turns (rotating who goes first); each figure in the table is the median of the rounds' figures (overlaps and timeouts: the sum; max holders: the most), so one row's figures may come from different rounds.`;
}

// ---------------------------------------------------------------------------------------------
// Report
// ---------------------------------------------------------------------------------------------

const OURS = 'nestjs-redis-lock';
const PEERS = ['redis-semaphore', 'redlock'];

function render(results, env) {
  const out = [];
  const { A, B, C, D, E, F, G, R, Acold } = results;
  const names = Object.keys(A ?? B ?? G ?? Acold ?? {});
  out.push('# Benchmarks');
  out.push('');
  out.push('Generated by `npm run bench` (bench/run.mjs): one process, one run, against a private');
  out.push('`redis-server` on a free loopback port, started and stopped by the benchmark.');
  out.push('');
  out.push(`- Command: \`${env.command}\` (\`npm run bench\` runs it once per Node version through bench/all.mjs)`);
  out.push(`- Date: ${env.date}; whole run ${env.elapsedS.toFixed(1)} s`);
  out.push(`- Node ${env.node}; Redis ${env.redis}; ${env.platform}`);
  out.push(`- CPU: ${env.cpu}, ${env.cores} cores (os.cpus()); Redis and Node share them`);
  out.push(`- Load average: ${env.load} — anything else running on the machine shows up as noise here`);
  out.push(`- Versions: ${Object.entries(env.versions).map(([k, v]) => `${k} ${v}`).join(', ')}`);
  out.push('');
  out.push('Contenders (each with its own ioredis connection; ours from a Nest application context with');
  out.push('`LockModule.forRoot({ redis: url })` and `LockService`):');
  out.push('');
  out.push('- **raw**: `SET key token NX PX ttl` + compare-and-delete Lua script (EVALSHA) — 2 round trips, the floor. In C it polls every 1 ms.');
  out.push('- **redis-semaphore** `Mutex`, default options. **redlock** with one client, default settings.');
  out.push('- Settings used in C (wait 30 s for everyone, so nobody times out):');
  for (const [name, s] of Object.entries(env.settings)) out.push(`  - ${name}: ${s.C}`);
  out.push('');
  out.push('"× raw" is each figure divided by the raw floor\'s (for ops/s higher is better, for latency lower).');
  out.push('');

  if (A) {
  out.push(`## A. Serial: one loop, ${fmt.int(SIZE.A)} acquire+release pairs on random keys`);
  out.push('');
  out.push(
    table(
      ['library', 'pairs/s', '× raw', 'median round pairs/s', 'p50 µs', '× raw', 'p99 µs', '× raw', 'Redis cmds/pair', 'requests/pair'],
      names.map((n) => [n, fmt.int(A[n].opsPerSec), ratio(A[n].opsPerSec, A.raw.opsPerSec), fmt.int(A[n].medianRoundOpsPerSec), fmt.us(A[n].p50), ratio(A[n].p50, A.raw.p50), fmt.us(A[n].p99), ratio(A[n].p99, A.raw.p99), fmt.n(A[n].cmdsPerPair, 1), fmt.n(A[n].reqPerPair, 1)]),
    ),
  );
  out.push('');
  out.push('Redis commands per pair (INFO commandstats, incl. commands run inside scripts), by command:');
  out.push('');
  for (const n of names) {
    out.push(`- ${n}: ${Object.entries(A[n].perCommand).sort((a, b) => b[1] - a[1]).map(([cmd, v]) => `${cmd} ${v.toFixed(2)}`).join(', ')}`);
  }
  out.push('');
  }
  if (B) {
  out.push(`## B. Concurrent: ${SIZE.B_LOOPS} loops on distinct keys, ${fmt.int(SIZE.B)} pairs in all`);
  out.push('');
  out.push(
    table(
      ['library', 'pairs/s', '× raw', 'p50 µs', '× raw', 'p99 µs', '× raw'],
      names.map((n) => [n, fmt.int(B[n].opsPerSec), ratio(B[n].opsPerSec, B.raw.opsPerSec), fmt.us(B[n].p50), ratio(B[n].p50, B.raw.p50), fmt.us(B[n].p99), ratio(B[n].p99, B.raw.p99)]),
    ),
  );
  out.push('');
  out.push(`A and B run in ${ROUNDS} equal rounds, the libraries taking turns (rotating who goes first), after a warm-up; pairs/s = all pairs / time spent in them.`);
  out.push('');

  }
  if (C) {
  out.push(`## C. Contended: one key, hold ${C_HOLD_MS} ms, ${C_OFF_LOCK_MS} ms off-lock, ${fmt.int(SIZE.C)} acquisitions × ${CONTENDED_ROUNDS} rounds, wait ${C_WAIT_MS / 1000} s`);
  out.push('');
  for (const workers of Object.keys(C)) {
    const c = C[workers];
    const names = Object.keys(c);
    out.push(`### ${workers} workers`);
    out.push('');
    out.push(
      table(
        ['library', 'acq/s', '× raw', 'busy %', '× raw', 'handoff p50 ms', '× raw', 'handoff p99 ms', '× raw', 'Redis cmds/acq', '× raw', 'requests/acq', '× raw', 'overlaps', 'timeouts'],
        names.map((n) => [
          n,
          fmt.int(c[n].acqPerSec),
          ratio(c[n].acqPerSec, c.raw.acqPerSec),
          fmt.pct(c[n].busyPct),
          ratio(c[n].busyPct, c.raw.busyPct),
          fmt.ms(c[n].handoffP50),
          ratio(c[n].handoffP50, c.raw.handoffP50),
          fmt.ms(c[n].handoffP99),
          ratio(c[n].handoffP99, c.raw.handoffP99),
          fmt.n(c[n].cmdsPerAcq, 1),
          ratio(c[n].cmdsPerAcq, c.raw.cmdsPerAcq),
          fmt.n(c[n].reqPerAcq, 1),
          ratio(c[n].reqPerAcq, c.raw.reqPerAcq),
          c[n].overlaps,
          c[n].failures,
        ]),
      ),
    );
    out.push('');
    out.push('Redis commands per acquisition, by command:');
    out.push('');
    for (const n of names) {
      const parts = Object.entries(c[n].perCommand)
        .sort((a, b) => b[1] - a[1])
        .map(([cmd, v]) => `${cmd} ${v.toFixed(2)}`);
      out.push(`- ${n}: ${parts.join(', ')}`);
    }
    out.push('');
    out.push(`Each round's acq/s: ${names.map((n) => `${n} ${c[n].rounds.map((v) => fmt.int(v)).join(', ')}`).join('; ')}.`);
    out.push('');
    // What back-to-back holds of that length would give: the ceiling for a library whose handoff
    // costs nothing beyond its release (a next hold that starts before the release resolves, as
    // ours with a local waiter, can go slightly above it).
    out.push(
      `Mean held interval (acquire resolved → release resolved: the ${C_HOLD_MS} ms sleep plus the release's round trip), and 1000 / it, the acq/s of back-to-back holds with no gap: ${names
        .map((n) => `${n} ${fmt.ms(c[n].meanHeldMs)} ms (${fmt.int(1000 / c[n].meanHeldMs)}/s)`)
        .join(', ')}.`,
    );
    out.push('');
  }
  out.push(roundsNote('C'));
  out.push('- busy % = union of held intervals (acquire resolved → release resolved) / wall time (first request → last release).');
  out.push('- handoff = previous holder\'s release resolved → next holder\'s acquire resolved (0 if the next one was first).');
  out.push('- Redis cmds/acq = delta of `INFO commandstats` calls over all commands (INFO excluded; commands run inside');
  out.push('  Lua scripts count, as Redis counts them) / acquisitions. requests/acq = commands the process sent');
  out.push('  (ioredis `sendCommand`, pipelined or not) / acquisitions, i.e. round trips without pipelining.');
  out.push('- overlaps = times a worker entered the critical section while another was in it (in-process counter; must be 0).');
  out.push('');

  }
  if (D) {
  out.push(`## D. @WithLock('d:<0>') vs locks.withLock(key, fn): ${fmt.int(D.calls)} serial calls each, random keys`);
  out.push('');
  const dec = D.decorated;
  const dir = D.direct;
  const ref = D.reference;
  out.push(
    table(
      ['form', 'median µs/call', '× raw', 'mean µs/call', '× raw', 'overhead vs withLock (median)', 'overhead (mean)'],
      [
        ['@WithLock method', fmt.n(dec.medianUs, 1), ratio(dec.medianUs, ref.medianUs), fmt.n(dec.meanUs, 1), ratio(dec.meanUs, ref.meanUs), `${fmt.n(dec.medianUs - dir.medianUs, 1)} µs (${fmt.n((dec.medianUs / dir.medianUs - 1) * 100, 1)} %)`, `${fmt.n(dec.meanUs - dir.meanUs, 1)} µs (${fmt.n((dec.meanUs / dir.meanUs - 1) * 100, 1)} %)`],
        ['locks.withLock', fmt.n(dir.medianUs, 1), ratio(dir.medianUs, ref.medianUs), fmt.n(dir.meanUs, 1), ratio(dir.meanUs, ref.meanUs), '—', '—'],
        ['raw acquire+release (reference)', fmt.n(ref.medianUs, 1), '1.00×', fmt.n(ref.meanUs, 1), '1.00×', '—', '—'],
      ],
    ),
  );
  out.push('');
  out.push('The three forms are interleaved call by call (order rotating), each call timed on its own.');
  out.push('');

  }
  if (E) {
  out.push(`## E. Scale: ${fmt.int(SIZE.E)} locks held at once, ttl ${SIZE.E_TTL} ms, renewals watched for ${SIZE.E_WINDOW / 1000} s`);
  out.push('');
  out.push(
    table(
      ['library', 'heap B/lock', '× raw', 'heap B/lock after window', 'renewals/s', 'Redis cmds/s', 'requests/s', 'acquire all ms', 'release all ms', 'lost while held'],
      names.map((n) => [
        n,
        fmt.int(E[n].bytesPerLock),
        ratio(E[n].bytesPerLock, E.raw.bytesPerLock),
        fmt.int(E[n].bytesPerLockSteady),
        E[n].renewalsPerSec > 0 ? fmt.int(E[n].renewalsPerSec) : '0 (no renewal)',
        fmt.int(E[n].serverCmdsPerSec),
        fmt.int(E[n].requestsPerSec),
        fmt.int(E[n].acquireMs),
        fmt.int(E[n].releaseMs),
        n === 'raw' ? `${E[n].lost} (expired: no renewal)` : E[n].lost,
      ]),
    ),
  );
  out.push('');
  const eo = E[OURS];
  out.push(`- Heap per lock = (heapUsed after gc with all ${fmt.int(SIZE.E)} held − before) / ${fmt.int(SIZE.E)}; "after window" measured again after the renewal window.`);
  out.push(`- Renewal settings: ${Object.entries(env.settings).filter(([, s]) => s.E).map(([n, s]) => `${n}: ${s.E}`).join('; ')}. raw keeps only key + token, no renewal.`);
  out.push(`- Ours: ${fmt.n(eo.batchesPerSec, 1)} renewal batches/s (leaseStats.renewalBatches), ${eo.timers} timer armed, ${fmt.int(eo.scheduled)} leases scheduled during the window; expected renewals/s = ${fmt.int(SIZE.E)} / (ttl/3) = ${fmt.int(SIZE.E / (SIZE.E_TTL / 3000))}.`);
  out.push(`- Renewals/s: ours from leaseStats.renewalsSent, the others from EVALSHA calls in INFO commandstats.`);
  out.push('');

  }
  if (F) {
  const SEM = 'redis-semaphore';
  out.push(
    `## F. Semaphore: ${SIZE.F_WORKERS} workers on one key, permits ${SIZE.F_PERMITS}, hold ${F_HOLD_MS} ms, ${F_OFF_LOCK_MS} ms off-lock, ${fmt.int(SIZE.F)} acquisitions × ${CONTENDED_ROUNDS} rounds, wait ${F_WAIT_MS / 1000} s`,
  );
  out.push('');
  out.push('raw has no semaphore, so "× sem" is each figure divided by redis-semaphore `Semaphore`\'s. Settings:');
  out.push('');
  for (const [name, s] of Object.entries(env.settings)) if (s.F) out.push(`- ${name}: ${s.F}`);
  out.push('');
  const fNames = Object.keys(F);
  const semRef = F[SEM];
  out.push(
    table(
      ['library', 'acq/s', '× sem', 'busy %', '× sem', 'free while waited %', 'wait mean ms', '× sem', 'wait p50 ms', 'wait p99 ms', '× sem', 'Redis cmds/acq', '× sem', 'requests/acq', '× sem', 'max holders', 'timeouts'],
      fNames.map((n) => [
        n,
        fmt.int(F[n].acqPerSec),
        ratio(F[n].acqPerSec, semRef?.acqPerSec),
        fmt.pct(F[n].busyPct),
        ratio(F[n].busyPct, semRef?.busyPct),
        fmt.pct(F[n].freeWhileWaitedPct),
        fmt.ms(F[n].waitMean),
        ratio(F[n].waitMean, semRef?.waitMean),
        fmt.ms(F[n].waitP50),
        fmt.ms(F[n].waitP99),
        ratio(F[n].waitP99, semRef?.waitP99),
        fmt.n(F[n].cmdsPerAcq, 1),
        ratio(F[n].cmdsPerAcq, semRef?.cmdsPerAcq),
        fmt.n(F[n].reqPerAcq, 1),
        ratio(F[n].reqPerAcq, semRef?.reqPerAcq),
        `${F[n].maxHolders} / ${F[n].permits}`,
        F[n].failures,
      ]),
    ),
  );
  out.push('');
  out.push('Redis commands per acquisition, by command:');
  out.push('');
  for (const n of fNames) {
    const parts = Object.entries(F[n].perCommand)
      .sort((a, b) => b[1] - a[1])
      .map(([cmd, v]) => `${cmd} ${v.toFixed(2)}`);
    out.push(`- ${n}: ${parts.join(', ')}`);
  }
  out.push('');
  out.push(`Each round's acq/s: ${fNames.map((n) => `${n} ${F[n].rounds.map((v) => fmt.int(v)).join(', ')}`).join('; ')}.`);
  out.push('');
  out.push(roundsNote('F'));
  out.push(`- busy % = sum over acquisitions of held time (acquire resolved → release resolved) / (wall time × ${SIZE.F_PERMITS} permits); wall = first request → last release. Mean held time per acquisition: ${fNames.map((n) => `${n} ${fmt.ms(F[n].meanHeldMs)} ms`).join(', ')}.`);
  out.push('- free while waited % = permit time lost to handoff: integral of min(free permits, workers waiting) over the run / (wall × permits),');
  out.push('  with permits held as in busy % and a worker waiting from its acquire call to its resolution. The rest of 100 % − busy % had nobody waiting.');
  out.push('- wait = acquire called → acquire resolved (the time a worker back from off-lock work spends getting a permit).');
  out.push(`- max holders = most workers inside at once (in-process counter, acquire resolved → release sent); must be ≤ ${SIZE.F_PERMITS}.`);
  out.push('- Redis cmds/acq and requests/acq as in C (INFO commandstats incl. in-script commands; ioredis `sendCommand` calls).');
  out.push('');

  }
  renderExtra(out, results);
  out.push('## Targets');
  out.push('');
  out.push('Issue 15. "Best peer" = the better of redis-semaphore and redlock for that figure (raw is the floor, not a');
  out.push('peer); C rows are the default mode (not the fair row). Scenarios left out with --only have no rows.');
  out.push('');
  out.push(table(['target', 'measured', 'result'], targets(results).map((t) => [t.what, t.value, t.met ? 'met' : '**missed**'])));
  out.push('');
  return out.join('\n');
}

/**
 * The targets of issue 15, thresholds in one place (labels are built from them). Each row is
 * { what, value, met }; rows for scenarios that did not run are left out. `what` depends on
 * nothing measured, so bench/all.mjs can line the rows of two runs up by it.
 */
const TARGET = {
  peerThroughput: 0.95, // A warm, B: ours pairs/s vs the best peer's
  coldThroughput: 0.8, // A cold
  busyPct: 95, // C
  vsRedlock: 3.5, // C acq/s
  handoffP99Ms: 0.5, // C
  requestsPerAcq: 2.2, // C
  semaphoreBusyPct: 90, // F
  vsSemaphore: 1.5, // F acq/s
  keysLeft: 100, // G
  growthBytes: 1e6, // G (1 MB, as G prints it: / 1e6)
  degradedP50: 1.5, // R: × all-up p50
  busyProbeMs: 300, // R
  cmdsPerPair: 8, // A: Redis commands per uncontended exclusive acquire+release
};

/** The best of PEERS by `figure` (highest, or lowest with `lower`): raw is the floor, not a peer. */
function bestPeer(scenario, figure, { lower = false } = {}) {
  const measured = PEERS.filter((p) => Number.isFinite(scenario[p]?.[figure]));
  measured.sort((a, b) => (lower ? 1 : -1) * (scenario[a][figure] - scenario[b][figure]));
  const name = measured[0];
  return { name: name ?? 'no peer', value: name ? scenario[name][figure] : NaN };
}

function targets({ A, B, C, F, G, R, Acold }) {
  const list = [];
  const add = (what, value, met) => list.push({ what, value, met: Boolean(met) });
  if (A) {
    const o = A[OURS];
    const best = bestPeer(A, 'opsPerSec');
    add(`A serial warm: pairs/s ≥ ${TARGET.peerThroughput}× best peer`, `${fmt.int(o.opsPerSec)} = ${ratio(o.opsPerSec, best.value)} ${best.name}`, o.opsPerSec >= TARGET.peerThroughput * best.value);
    // "Best" for a latency is the lowest: ours must not have the worst tail of the three.
    const tail = bestPeer(A, 'p99', { lower: true });
    add("A serial warm: p99 ≤ best peer's p99", `${fmt.us(o.p99)} µs vs ${fmt.us(tail.value)} µs ${tail.name}`, o.p99 <= tail.value);
  }
  if (Acold) {
    const o = Acold[OURS].opsPerSec;
    const best = bestPeer(Acold, 'opsPerSec');
    add(`A cold (first ${fmt.int(SIZE.COLD_PAIRS)} pairs): pairs/s ≥ ${TARGET.coldThroughput}× best peer`, `${fmt.int(o)} = ${ratio(o, best.value)} ${best.name}`, o >= TARGET.coldThroughput * best.value);
  }
  if (B) {
    const o = B[OURS].opsPerSec;
    const best = bestPeer(B, 'opsPerSec');
    add(`B ${SIZE.B_LOOPS}-way: pairs/s ≥ ${TARGET.peerThroughput}× best peer`, `${fmt.int(o)} = ${ratio(o, best.value)} ${best.name}`, o >= TARGET.peerThroughput * best.value);
  }
  // C: the default-mode row only; the fair row is shown in C but is not what the targets are about.
  for (const w of Object.keys(C ?? {}).map(Number).sort((a, b) => a - b)) {
    const o = C[w][OURS];
    const redlock = C[w].redlock?.acqPerSec;
    add(`C ${w} workers: busy % ≥ ${TARGET.busyPct}`, fmt.pct(o.busyPct), o.busyPct >= TARGET.busyPct);
    add(`C ${w} workers: acq/s ≥ ${TARGET.vsRedlock}× redlock`, `${fmt.int(o.acqPerSec)} = ${ratio(o.acqPerSec, redlock)}`, o.acqPerSec >= TARGET.vsRedlock * redlock);
    add(`C ${w} workers: handoff p99 < ${TARGET.handoffP99Ms} ms`, `${fmt.ms(o.handoffP99)} ms`, o.handoffP99 < TARGET.handoffP99Ms);
    add(`C ${w} workers: requests/acquisition ≤ ${TARGET.requestsPerAcq}`, fmt.n(o.reqPerAcq, 2), o.reqPerAcq <= TARGET.requestsPerAcq);
  }
  if (F) {
    const o = F[OURS];
    const sem = F['redis-semaphore']?.acqPerSec;
    add(`F semaphore, permits ${SIZE.F_PERMITS}: busy % ≥ ${TARGET.semaphoreBusyPct}`, fmt.pct(o.busyPct), o.busyPct >= TARGET.semaphoreBusyPct);
    add(`F semaphore, permits ${SIZE.F_PERMITS}: acq/s ≥ ${TARGET.vsSemaphore}× redis-semaphore`, `${fmt.int(o.acqPerSec)} = ${ratio(o.acqPerSec, sem)}`, o.acqPerSec >= TARGET.vsSemaphore * sem);
  }
  if (G) {
    const g = G[OURS];
    add(`G garbage: ≤ ${TARGET.keysLeft} keys left once leases are gone`, fmt.int(g.keysLeft), g.keysLeft <= TARGET.keysLeft);
    add(`G garbage: ≤ ${TARGET.growthBytes / 1e6} MB used_memory growth`, `${fmt.n(g.growthBytes / 1e6, 2)} MB`, g.growthBytes <= TARGET.growthBytes);
  }
  if (R) {
    const r = R[OURS];
    // Both ways a master can be down: hung (connection open, no answers) and gone (connection refused).
    for (const [phase, how] of [['hung', 'down (hung: SIGSTOP)'], ['down', 'down (killed: SIGKILL)']]) {
      if (!r[phase]) continue;
      const p = r[phase];
      add(`R Redlock, 1 of 3 masters ${how}: free-key acquire p50 ≤ ${TARGET.degradedP50}× all-up p50`, `${fmt.ms(p.acquireP50)} ms = ${ratio(p.acquireP50, r.allUp.acquireP50)}`, p.acquireP50 <= TARGET.degradedP50 * r.allUp.acquireP50);
      add(
        `R Redlock, 1 of 3 masters ${how}: held key answers busy (never unavailable) within ${TARGET.busyProbeMs} ms`,
        `${p.outcomes.busy}/${SIZE.R_PROBES} busy, max ${fmt.ms(p.probeMax)} ms`,
        p.outcomes.busy === p.probes && p.probes === SIZE.R_PROBES && p.probeMax <= TARGET.busyProbeMs,
      );
    }
  }
  if (A) {
    const o = A[OURS];
    add(
      `Cost: Redis commands per uncontended exclusive acquire+release ≤ ${TARGET.cmdsPerPair} (A; INFO commandstats incl. in-script; median of rounds)`,
      `${fmt.n(o.medianRoundCmdsPerPair, 3)} (all rounds ${fmt.n(o.cmdsPerPair, 3)}; requests ${fmt.n(o.reqPerPair, 2)})`,
      o.medianRoundCmdsPerPair <= TARGET.cmdsPerPair,
    );
  }
  return list;
}

// ---------------------------------------------------------------------------------------------
// R, G, A cold: setup and report
// ---------------------------------------------------------------------------------------------

/** Three private masters; ours (LockModule with `redlock`) and redlock 5 over them. */
async function redlockScenario(resources) {
  const servers = [];
  for (let i = 0; i < 3; i++) {
    const server = await RedisServer.start();
    resources.extraServers.push(server);
    servers.push(server);
  }
  const urls = servers.map((s) => s.url);
  class RedlockBenchModule {}
  Module({ imports: [LockModule.forRoot({ redlock: urls, prefix: 'rl-ours:' })] })(RedlockBenchModule);
  const app = await NestFactory.createApplicationContext(RedlockBenchModule, { logger: ['error'] });
  resources.extraApps.push(app);
  const locks = app.get(LockService);
  // Their clients: one per master; ioredis would otherwise retry a dead master's commands forever.
  const clients = urls.map((url) => {
    const redis = new Redis(url, { maxRetriesPerRequest: 1 });
    redis.on('error', () => undefined);
    resources.clients.push(redis);
    return redis;
  });
  await Promise.all(clients.map((c) => c.ping()));
  const { default: Redlock, ResourceLockedError } = await import('redlock');
  const redlock = new Redlock(clients, { retryCount: 0 });
  redlock.on('error', () => undefined);
  const ours = {
    name: OURS,
    acquire: (key) => locks.acquire(key, { wait: 0 }),
    release: (lock) => lock.release(),
    async probe(key) {
      try {
        return (await locks.tryAcquire(key)) === null ? 'busy' : 'acquired';
      } catch {
        return 'unavailable';
      }
    },
  };
  // A hung master would keep redlock's call pending for ever: bounded here at 5 s (counted as failed).
  const bounded = (promise) =>
    Promise.race([promise, new Promise((_, reject) => setTimeout(() => reject(new Error('no answer within 5 s')), 5_000).unref())]);
  const theirs = {
    name: 'redlock',
    acquire: (key) => bounded(redlock.acquire([`rl:${key}`], 30_000)),
    release: (lock) => bounded(lock.release()),
    async probe(key) {
      try {
        await bounded(redlock.acquire([`rl:${key}`], 30_000));
        return 'acquired';
      } catch (error) {
        // ExecutionError: busy when some master voted against because the resource is locked.
        // (Each attempt's stats settle only when every master answered: bounded too.)
        const attempts = await bounded(Promise.all(error?.attempts ?? [])).catch(() => []);
        const locked = attempts.some((a) => [...(a?.votesAgainst?.values() ?? [])].some((e) => e instanceof ResourceLockedError));
        return locked ? 'busy' : 'unavailable';
      }
    },
  };
  // Warm-up while all are up.
  for (const adapter of [ours, theirs]) for (const key of randomKeys('rw', 50)) await adapter.release(await adapter.acquire(key));
  return redlockDown([ours, theirs], { servers, pairs: SIZE.R_PAIRS, probes: SIZE.R_PROBES, held: 'r-held', blocks: SIZE.R_BLOCKS });
}

function renderExtra(out, { A, Acold, G, R }) {
  if (Acold) {
    const names = Object.keys(Acold);
    out.push(`## A cold. First ${fmt.int(SIZE.COLD_PAIRS)} serial pairs in a fresh process (${SIZE.COLD_ROUNDS} processes per library, rotating; medians)`);
    out.push('');
    out.push(
      table(
        ['library', 'pairs/s', '× raw', 'p50 µs', 'p99 µs', 'first pair ms'],
        names.map((n) => [n, fmt.int(Acold[n].opsPerSec), ratio(Acold[n].opsPerSec, Acold.raw.opsPerSec), fmt.us(Acold[n].p50), fmt.us(Acold[n].p99), fmt.ms(Acold[n].firstMs)]),
      ),
    );
    out.push('');
    out.push('Timed from the first acquire after the library is set up and its connection answered (a PING, or for ours one `isLocked`).');
    out.push('');
  }
  if (G) {
    const names = Object.keys(G);
    out.push(`## G. Garbage: ${fmt.int(SIZE.G)} distinct keys, each locked and released once (64 loops)`);
    out.push('');
    out.push(
      table(
        ['library', 'keys right after', 'keys left (leases gone)', 'of them without TTL', 'used_memory growth', 'sample key'],
        names.map((n) => [n, fmt.int(G[n].keysRightAfter), fmt.int(G[n].keysLeft), fmt.int(G[n].persistent), `${fmt.n(G[n].growthBytes / 1e6, 2)} MB`, G[n].sample[0] ?? '—']),
      ),
    );
    out.push('');
    out.push('On an emptied Redis; used_memory after MEMORY PURGE, before and after (after keys with a TTL ran out, up to 3 s).');
    out.push('');
  }
  if (R) {
    out.push(`## R. Redlock over 3 masters: all up, one hung (SIGSTOP), one down (SIGKILL)`);
    out.push('');
    out.push(`${fmt.int(SIZE.R_PAIRS)} free-key acquisitions (acquire timed, then released) and ${SIZE.R_PROBES} one-try probes of a key held by the same library, per phase. Each phase's acquisitions run in ${SIZE.R_BLOCKS} blocks, the libraries taking turns; the all-up and hung blocks alternate (SIGSTOP, then SIGCONT, ${SIZE.R_BLOCKS} times), the down blocks come last (the killed master stays down); the probes run in each phase's last block. Ours: \`LockModule.forRoot({ redlock: [3 urls] })\`, \`acquire(key, { wait: 0 })\` and \`tryAcquire\`; redlock 5: \`new Redlock([3 clients], { retryCount: 0 })\`.`);
    out.push('');
    const rows = [];
    for (const [name, phases] of Object.entries(R)) {
      for (const [phase, r] of Object.entries(phases)) {
        rows.push([
          name,
          phase,
          fmt.ms(r.acquireP50),
          ratio(r.acquireP50, phases.allUp.acquireP50),
          fmt.ms(r.acquireP99),
          r.failures,
          fmt.ms(r.probeP50),
          fmt.ms(r.probeMax),
          `${r.outcomes.busy} / ${r.outcomes.unavailable} / ${r.outcomes.acquired}`,
        ]);
      }
    }
    out.push(table(['library', 'phase', 'acquire p50 ms', '× all up', 'acquire p99 ms', 'failed', 'held-key probe p50 ms', 'probe max ms', 'busy / unavailable / acquired'], rows));
    out.push('');
  }
}

/** Hand-written analysis kept beside the bench (bench/ANALYSIS.md), appended if present. */
function analysisSection() {
  const file = fileURLToPath(new URL('./ANALYSIS.md', import.meta.url));
  return fs.existsSync(file) ? fs.readFileSync(file, 'utf8') : '';
}

// ---------------------------------------------------------------------------------------------
// Run, and always clean up: Nest app, every connection, the redis-server.
// ---------------------------------------------------------------------------------------------

const resources = { server: undefined, app: undefined, clients: [], extraServers: [], extraApps: [] };

async function cleanup() {
  const steps = [];
  if (resources.app) steps.push(resources.app.close().catch((e) => log(`closing the Nest app: ${e}`)));
  for (const app of resources.extraApps) steps.push(app.close().catch((e) => log(`closing a Nest app: ${e}`)));
  resources.extraApps = [];
  await Promise.all(steps);
  resources.app = undefined;
  await Promise.all(
    resources.clients.map((redis) => (redis.status === 'ready' ? redis.quit().catch(() => redis.disconnect()) : redis.disconnect())),
  );
  resources.clients = [];
  if (resources.server) await resources.server.stop();
  await Promise.all(resources.extraServers.map((server) => server.stop()));
  resources.extraServers = [];
  resources.server = undefined;
}

let cleaningUp;
const onSignal = (signal) => {
  log(`${signal}: stopping`);
  cleaningUp ??= cleanup();
  cleaningUp.finally(() => process.exit(130));
};
process.once('SIGINT', onSignal);
process.once('SIGTERM', onSignal);

const watchdog = setTimeout(() => {
  log(`bench: still running after ${RUN_DEADLINE_MS / 60_000} min, giving up`);
  process.exitCode = 1;
  cleaningUp ??= cleanup();
  cleaningUp.finally(() => process.exit(1));
}, RUN_DEADLINE_MS);
watchdog.unref();

try {
  await main(resources);
} catch (error) {
  process.exitCode = 1;
  log(error?.stack ?? error);
} finally {
  cleaningUp ??= cleanup();
  await cleaningUp;
  clearTimeout(watchdog);
}

/**
 * One safety run: a topology, client processes running seeded schedules, a fault plan, the recorded
 * history, and the invariants checked over it.
 *
 *   const result = await runSafety({ topology: 'single', seed: 7, durationMs: 15_000 });
 *   result.violations   // [] when every invariant held
 *   result.report       // text: what ran, and for each violation the slice of history and the schedule
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { clockCorrection, readClock, shiftTimes, type ClockReading, type ClockSample } from './clock-offset.js';
import { check, describeViolation, type HistoryEvent, type Violation } from './invariants.js';
import { FAIR_KEYS, fairAppWorkers, fairWorkerOps, faultPlan, keySpace, workerOps, type Fault, type Op, type TopologyName } from './schedule.js';
import { leftovers, sampleHolds, startTopology } from './topology.js';
import { adminCall } from '../support/redis-admin.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const WORKER = path.join(ROOT, 'test/fixtures/safety-worker.mjs');
const now = () => performance.timeOrigin + performance.now();
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, Math.max(0, ms)));

export interface SafetyOptions {
  topology: TopologyName;
  seed: number;
  /** How long the clients run (faults included). */
  durationMs: number;
  workersPerApp?: number;
  /** Where to write the history and schedule of a failing run (default: a temp dir). */
  outDir?: string;
}

export interface SafetyResult {
  topology: TopologyName;
  seed: number;
  violations: Violation[];
  /** Seconds from the start of the clients to the first violating event. */
  firstViolationAfterS?: number;
  stats: Record<string, number>;
  faults: Fault[];
  report: string;
  historyFile?: string;
}

interface Child {
  index: number;
  process: ChildProcess;
  lines: string[];
  stderr: string;
  waiters: Array<{ ev: string; resolve: () => void }>;
  seen: Set<string>;
  exited: Promise<void>;
  /** Every history event this process emitted (its times are on its own clock until corrected). */
  events: HistoryEvent[];
  /** Resolves the pending clock ping with the process's clock reading. */
  pong?: (t: number) => void;
}

/** Round trips per clock measurement: the shortest one is kept (see clock-offset.ts). */
const CLOCK_PINGS = 15;

/** The child's clock against ours: CLOCK_PINGS pings, one at a time. */
async function measureClock(child: Child): Promise<ClockReading> {
  const samples: ClockSample[] = [];
  for (let i = 0; i < CLOCK_PINGS; i++) {
    const sent = now();
    const answered = await new Promise<number>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`child ${child.index}: no answer to a clock ping within 10 s`)), 10_000);
      child.pong = (t) => {
        clearTimeout(timer);
        resolve(t);
      };
      child.process.stdin!.write('ping\n');
    });
    samples.push({ sent, answered, received: now() });
  }
  child.pong = undefined;
  return readClock(samples);
}

/** The children's clocks in one line: "child 0: +0.02 ± 0.03 ms (after the run: +0.01 ± 0.02 ms); ...". */
function describeClocks(before: ClockReading[], after: ClockReading[], corrections: number[]): string {
  const ms = (reading: ClockReading) => `${reading.offset >= 0 ? '+' : ''}${reading.offset.toFixed(2)} ± ${reading.uncertainty.toFixed(2)} ms`;
  const parts = before.map(
    (reading, i) => `child ${i}: ${ms(reading)}${after[i] ? ` (after the run: ${ms(after[i])})` : ''}${corrections[i] ? ', corrected' : ''}`,
  );
  return `clocks against the runner's: ${parts.join('; ') || 'not measured'}`;
}

function waitFor(child: Child, ev: string, ms: number): Promise<void> {
  if (child.seen.has(ev)) return Promise.resolve();
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`child ${child.index}: no "${ev}" within ${ms} ms\n${child.stderr.slice(-2000)}`)), ms);
    child.waiters.push({
      ev,
      resolve: () => {
        clearTimeout(timer);
        resolve();
      },
    });
  });
}

export async function runSafety(options: SafetyOptions): Promise<SafetyResult> {
  const { topology: name, seed, durationMs } = options;
  const workersPerApp = options.workersPerApp ?? 3;
  const topology = await startTopology(name);
  const events: HistoryEvent[] = [];
  const children: Child[] = [];
  /** Each child's clock against the runner's, before the workers start and after they stopped. */
  const clocksBefore: ClockReading[] = [];
  const clocksAfter: ClockReading[] = [];
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `safety-${name}-${seed}-`));
  const schedules = new Map<string, Op[]>();
  const plan = faultPlan(name, seed, durationMs, topology.children);
  const space = keySpace(name);
  const agreedPermits = new Map(space.permits);
  const fair = name !== 'redlock';
  const probeKeys: Array<[string, object[]]> = [
    ...space.exclusive.map((key): [string, object[]] => [key, fair ? [{}, { fair: true }] : [{}]]),
    ...space.leader.map((key): [string, object[]] => [key, [{}]]),
    ...space.permits.map(([key, permits]): [string, object[]] => [key, [{ permits }, { permits: permits + 1 }]]),
    ...space.readWrite.map((key): [string, object[]] => [key, [{ mode: 'read' }, {}, { fair: true }]]),
  ];
  const fairWorkers = fairAppWorkers(name);
  if (fairWorkers > 0) probeKeys.push(...FAIR_KEYS.map((key): [string, object[]] => [key, [{}, { fair: true }]]));
  let t0 = now();
  /** The sampler of holds (below) runs while this is true; cleared on every way out. */
  let sampling = false;
  try {
    for (let c = 0; c < topology.children; c++) {
      const apps = [];
      for (let a = 0; a < topology.appsPerChild; a++) {
        const app = c * topology.appsPerChild + a;
        const workers = Array.from({ length: workersPerApp }, (_, w) => {
          const ops = workerOps(name, seed, app, w);
          schedules.set(`${app}/${w}`, ops);
          return ops;
        });
        apps.push({ app, options: topology.options(app, c), workers });
      }
      if (fairWorkers > 0) {
        // This process's dedicated fair app (numbered after every mixed app); same connection options.
        const app = topology.children * topology.appsPerChild + c;
        const workers = Array.from({ length: fairWorkers }, (_, w) => {
          const ops = fairWorkerOps(name, seed, app, w);
          schedules.set(`${app}/${w}`, ops);
          return ops;
        });
        apps.push({ app, options: topology.options(c * topology.appsPerChild, c), workers });
      }
      const file = path.join(dir, `child-${c}.json`);
      fs.writeFileSync(file, JSON.stringify({ child: c, apps, probeKeys }));
      const proc = spawn(process.execPath, [WORKER, file], { cwd: ROOT, stdio: ['pipe', 'pipe', 'pipe'], env: { ...process.env, NODE_OPTIONS: '' } });
      const child: Child = {
        index: c,
        process: proc,
        lines: [],
        stderr: '',
        waiters: [],
        seen: new Set(),
        events: [],
        exited: new Promise((resolve) => proc.once('exit', () => resolve())),
      };
      let partial = '';
      proc.stdout!.setEncoding('utf8');
      proc.stdout!.on('data', (chunk: string) => {
        partial += chunk;
        const lines = partial.split('\n');
        partial = lines.pop() ?? '';
        for (const line of lines) {
          if (!line) continue;
          let event: HistoryEvent;
          try {
            event = JSON.parse(line) as HistoryEvent;
          } catch {
            child.stderr += `[stdout] ${line}\n`;
            continue;
          }
          if (event.ev === 'pong') {
            child.pong?.(event.t as number);
            continue;
          }
          events.push(event);
          child.events.push(event);
          child.seen.add(event.ev);
          for (const waiter of child.waiters.filter((w) => w.ev === event.ev)) waiter.resolve();
          child.waiters = child.waiters.filter((w) => w.ev !== event.ev);
        }
      });
      proc.stderr!.setEncoding('utf8');
      proc.stderr!.on('data', (chunk: string) => (child.stderr = (child.stderr + chunk).slice(-20_000)));
      proc.stdin!.on('error', () => undefined);
      children.push(child);
    }
    await Promise.all(children.map((child) => waitFor(child, 'ready', 60_000)));
    for (const child of children) clocksBefore.push(await measureClock(child));
    const send = (child: Child, line: string) => child.process.stdin!.write(`${line}\n`);
    t0 = now();
    children.forEach((child) => send(child, 'go'));
    // Every ~100 ms, what each server holds: first and last sight of each (server, key, token). A
    // sight is timed when the look was sent, which is no later than the instant Redis answered for.
    const sights = new Map<string, { server: number; key: string; token: string; first: number; last: number; firstAnswered: number }>();
    sampling = true;
    // Masters only: a replica's copy of a released key goes a moment later.
    const ports = topology.dataPorts();
    const roles = await Promise.all(ports.map((port) => adminCall(port, 'ROLE').then((role) => (role as string[])[0], () => 'master')));
    const sampler = (async () => {
      while (sampling) {
        for (let server = 0; server < ports.length; server++) {
          if (roles[server] !== 'master') continue;
          const t = now();
          const holds = await sampleHolds(ports[server]).catch(() => []);
          const answered = now();
          for (const [key, token] of holds) {
            const id = `${server} ${key} ${token}`;
            const sight = sights.get(id);
            if (sight) sight.last = t;
            else sights.set(id, { server, key, token, first: t, last: t, firstAnswered: answered });
          }
        }
        await sleep(100);
      }
    })();

    const paused = new Set<number>();
    const pauseChild = (index: number, pause: boolean) => {
      const pid = children[index]?.process.pid;
      if (pid === undefined) return;
      if (pause) paused.add(index);
      else paused.delete(index);
      process.kill(pid, pause ? 'SIGSTOP' : 'SIGCONT');
    };
    try {
      for (const fault of plan) {
        await sleep(t0 + fault.at - now());
        let start = now();
        await topology.inject(fault, pauseChild, (edge, detail) => {
          if (edge === 'start') start = now();
          else events.push({ ev: 'fault', kind: fault.kind, target: fault.target, start, end: now(), detail });
        });
      }
    } finally {
      for (const index of paused) pauseChild(index, false);
    }
    await sleep(t0 + durationMs - now());
    children.forEach((child) => send(child, 'stop'));
    await Promise.all(children.map((child) => waitFor(child, 'stopped', 30_000)));
    for (const child of children) clocksAfter.push(await measureClock(child));
    // Every lease (a hold whose release failed keeps it up to its ttl) and every waiting mark runs out.
    const longestTtl = Math.max(600, ...[...schedules.values()].flat().map((op) => op.ttl));
    await sleep(longestTtl + 900);
    // The holds are watched until then: a hold left behind is seen for its whole ttl, also when
    // it was left late in the run. (Not during the probe: the probe's holds belong to no call.)
    sampling = false;
    await sampler;
    for (const sight of sights.values()) events.push({ ev: 'held', ...sight });
    send(children[0], 'probe');
    await waitFor(children[0], 'probed', 30_000);
    children.forEach((child) => send(child, 'close'));
    await Promise.all(children.map((child) => waitFor(child, 'closed', 20_000)));
    await sleep(1_500);
    for (const port of topology.dataPorts()) {
      for (const key of await leftovers(port)) events.push({ ev: 'leftover', port, key });
    }
  } finally {
    sampling = false;
    for (const child of children) {
      if (child.process.exitCode === null && child.process.pid !== undefined) {
        try {
          process.kill(child.process.pid, 'SIGCONT');
        } catch {
          // gone
        }
        child.process.kill('SIGKILL');
      }
    }
    await Promise.all(children.map((child) => Promise.race([child.exited, sleep(5_000)])));
    await topology.stop().catch(() => undefined);
  }

  // One timeline: each child's times moved onto the runner's clock when they measurably differ.
  const corrections = children.map((_, i) => (clocksBefore[i] ? clockCorrection(clocksBefore[i]) : 0));
  children.forEach((child, i) => child.events.forEach((event) => shiftTimes(event, corrections[i])));
  const clocks = describeClocks(clocksBefore, clocksAfter, corrections);

  const { violations, calls, faults } = check(events, { topology: name, agreedPermits });
  const stats: Record<string, number> = { calls: calls.length, granted: calls.filter((c) => c.grant).length, faults: faults.length };
  for (const call of calls) {
    const outcome = call.error ? `error:${call.error.abort ? 'abort' : call.error.name}` : `result:${call.result ?? 'none'}`;
    stats[outcome] = (stats[outcome] ?? 0) + 1;
    if (call.parent) stats.nested = (stats.nested ?? 0) + 1;
    if (call.grant && call.shared.size > 0) stats.reentered = (stats.reentered ?? 0) + 1;
    if (call.uses.length > 0 && (call.uses.at(-1)!.t - call.grant!.t) > call.ttl) stats.renewedHolds = (stats.renewedHolds ?? 0) + 1;
  }
  for (const f of faults) stats[`fault:${f.kind}`] = (stats[`fault:${f.kind}`] ?? 0) + 1;
  for (const e of events) {
    const lost = e.ev === 'fault' && e.kind === 'cutReply' ? /^(\d+) replies lost/.exec(String(e.detail ?? '')) : null;
    if (lost) stats.repliesLost = (stats.repliesLost ?? 0) + Number(lost[1]);
  }

  const firstAt = violations.length
    ? Math.min(...violations.map((v) => Math.max(...v.calls.map((c) => c.grant?.t ?? c.endT ?? c.callT), t0)))
    : undefined;
  const header =
    `safety ${name} seed ${seed}: ${durationMs} ms, ${stats.calls} calls, ${stats.granted} granted, ${faults.length} faults (${plan.map((f) => f.kind).join(', ') || 'none'})` +
    `\n${clocks}`;
  let report = header;
  let historyFile: string | undefined;
  if (violations.length > 0) {
    const outDir = options.outDir ?? dir;
    fs.mkdirSync(outDir, { recursive: true });
    historyFile = path.join(outDir, `history-${name}-${seed}.jsonl`);
    fs.writeFileSync(historyFile, events.map((e) => JSON.stringify(e)).join('\n'));
    const scheduleFile = path.join(outDir, `schedule-${name}-${seed}.json`);
    fs.writeFileSync(scheduleFile, JSON.stringify({ topology: name, seed, durationMs, faults: plan, workers: Object.fromEntries(schedules) }, null, 1));
    const byInvariant = new Map<number, Violation[]>();
    for (const v of violations) byInvariant.set(v.invariant, [...(byInvariant.get(v.invariant) ?? []), v]);
    const parts = [`${header}\n${violations.length} VIOLATION(S), first after ${(((firstAt ?? t0) - t0) / 1000).toFixed(1)} s`];
    for (const [invariant, list] of [...byInvariant].sort(([a], [b]) => a - b)) {
      parts.push(`--- invariant ${invariant}: ${list.length} violation(s); first ${Math.min(3, list.length)}:`);
      for (const v of list.slice(0, 3)) parts.push(describeViolation(v, t0));
    }
    // The schedule of the workers involved in the first violations (the whole schedule is in the file).
    const involved = new Set(violations.slice(0, 3).flatMap((v) => v.calls.map((c) => `${c.app}/${c.worker}`)));
    parts.push(`--- fault plan: ${JSON.stringify(plan)}`);
    for (const worker of involved) parts.push(`--- schedule of app/worker ${worker} (first 8 ops): ${JSON.stringify(schedules.get(worker)?.slice(0, 8))}`);
    parts.push(`replay: npm run check:safety -- --topology ${name} --seed ${seed} --seconds ${durationMs / 1000}`);
    parts.push(`history: ${historyFile}\nschedule: ${scheduleFile}`);
    report = parts.join('\n');
  } else if (process.env.SAFETY_KEEP === '1') {
    historyFile = path.join(dir, `history-${name}-${seed}.jsonl`);
    fs.writeFileSync(historyFile, events.map((e) => JSON.stringify(e)).join('\n'));
    report += `\nhistory: ${historyFile}`;
  } else {
    fs.rmSync(dir, { recursive: true, force: true });
  }
  return {
    topology: name,
    seed,
    violations,
    firstViolationAfterS: firstAt === undefined ? undefined : (firstAt - t0) / 1000,
    stats,
    faults: plan,
    report,
    historyFile,
  };
}

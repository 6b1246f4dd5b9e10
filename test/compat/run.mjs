#!/usr/bin/env node
/**
 * Consumer matrix, run from the packed tarball (`npm run test:compat`; see README.md here).
 *
 * For each row of rows.mjs (a consumer app as `nest new` makes it) and each Node version, in a
 * temp folder:
 *   a. type-check: the app's `tsc -p tsconfig.json --noEmit`, importing from 'nestjs-redis-lock'
 *      and 'nestjs-redis-lock/terminus';
 *   b. build (`tsc -p tsconfig.build.json`), start dist/main.js against a private redis-server on a
 *      free port, send two concurrent POST /orders/42 to a `@WithLock('order:<id>', { wait: 0 })`
 *      route whose handler holds until it is told to finish: one 409 first (while the other still
 *      holds), then one 201; GET /health (terminus indicator) answers 200;
 *   c. the app's own test script (`npm test`, jest with the scaffold's config, unchanged) running a
 *      spec that uses LockModule.forRoot({ store: 'memory' }) through @nestjs/testing.
 *
 * Installs are cached per row in $COMPAT_CACHE (default ~/.cache/nestjs-redis-lock/compat), keyed by
 * the row's package list; when only the tarball changed, it is installed over the cached
 * node_modules. Environment: COMPAT_NODES (default "system,22.23.5,24.22.3"), COMPAT_ROWS (names,
 * comma-separated), COMPAT_TGZ (use this tarball instead of packing), COMPAT_KEEP=1 (keep the temp apps).
 */
import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { homedir, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { rows } from './rows.mjs';

const HERE = dirname(fileURLToPath(import.meta.url));
const ROOT = resolve(HERE, '../..');
const CACHE = process.env.COMPAT_CACHE ?? join(process.env.XDG_CACHE_HOME ?? join(homedir(), '.cache'), 'nestjs-redis-lock', 'compat');
const NODES = (process.env.COMPAT_NODES ?? 'system,22.23.5,24.22.3').split(',').map((s) => s.trim()).filter(Boolean);
const ONLY = process.env.COMPAT_ROWS?.split(',').map((s) => s.trim());
const KEEP = process.env.COMPAT_KEEP === '1';
const STEP_TIMEOUT_MS = 180_000;

const log = (...args) => console.log('[compat]', ...args);
const sha = (algo, data) => createHash(algo).update(data).digest('hex');
const seconds = (ms) => `${(ms / 1000).toFixed(1)}s`;

/** Runs a command to completion; returns { code, out } (stdout+stderr). Never throws. */
function run(cmd, args, { cwd, env, timeoutMs = STEP_TIMEOUT_MS } = {}) {
  return new Promise((done) => {
    const child = spawn(cmd, args, { cwd, env: env ?? process.env, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (out += d));
    const timer = setTimeout(() => {
      out += `\n[compat] timed out after ${seconds(timeoutMs)}, killing pid ${child.pid}`;
      child.kill('SIGKILL');
    }, timeoutMs);
    child.on('error', (error) => { clearTimeout(timer); done({ code: -1, out: out + String(error) }); });
    child.on('close', (code, signal) => { clearTimeout(timer); done({ code: code ?? (signal ? 1 : 0), out }); });
  });
}

function must(result, what) {
  if (result.code !== 0) throw new Error(`${what} failed (exit ${result.code}):\n${tail(result.out)}`);
  return result;
}

const atLeast = (version, min) => {
  const [a, b] = [version.replace(/^v/, ''), min].map((v) => v.split('.').map(Number));
  for (let i = 0; i < 3; i++) if (a[i] !== b[i]) return a[i] > b[i];
  return true;
};

const tail = (text, lines = 40) => text.trimEnd().split('\n').slice(-lines).join('\n');

async function freePort() {
  for (;;) {
    const port = await new Promise((ok, fail) => {
      const server = createServer();
      server.once('error', fail);
      server.listen(0, '127.0.0.1', () => { const { port } = server.address(); server.close(() => ok(port)); });
    });
    if (port !== 6379) return port;
  }
}

// ---------- the package under test ----------

async function packTarball() {
  if (process.env.COMPAT_TGZ) return resolve(process.env.COMPAT_TGZ);
  if (!existsSync(join(ROOT, 'dist/cjs/index.js'))) throw new Error('dist/ is missing: run `npm run build` (npm run test:compat does)');
  const dir = mkdtempSync(join(tmpdir(), 'nrl-pack-'));
  const packed = must(await run('npm', ['pack', '--json', '--pack-destination', dir], { cwd: ROOT }), 'npm pack');
  const [{ filename }] = JSON.parse(packed.out.slice(packed.out.indexOf('[')));
  return join(dir, filename);
}

// ---------- node versions ----------

function nodeBin(version) {
  if (version === 'system') return { label: `system ${process.version}`, bin: dirname(process.execPath) };
  const got = spawnSync(join(ROOT, 'scripts/with-node.sh'), [version, '--print-bin'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
  if (got.status !== 0) throw new Error(`could not get Node ${version}`);
  return { label: `v${version}`, bin: got.stdout.trim() };
}

// ---------- installs ----------

/** node_modules for the row: cached by its package list; the tarball is installed over it when it changed. */
async function installRow(row, tgz) {
  const tgzHash = sha('sha256', readFileSync(tgz));
  const key = sha('sha256', JSON.stringify(row.deps)).slice(0, 12);
  const dir = join(CACHE, `${row.name}-${key}`);
  const marker = join(dir, 'installed-tarball.sha256');
  const started = Date.now();
  const env = { ...process.env, npm_config_update_notifier: 'false' };
  let how;
  if (!existsSync(marker)) {
    rmSync(dir, { recursive: true, force: true });
    mkdirSync(dir, { recursive: true });
    cpSync(tgz, join(dir, 'nestjs-redis-lock.tgz'));
    const dependencies = { ...row.deps, 'nestjs-redis-lock': 'file:nestjs-redis-lock.tgz' };
    writeFileSync(join(dir, 'package.json'), JSON.stringify({ name: `compat-${row.name}`, private: true, dependencies }, null, 2));
    must(await run('npm', ['install', '--no-audit', '--no-fund', '--prefer-offline', '--loglevel=error'], { cwd: dir, env, timeoutMs: 600_000 }), `npm install (${row.name})`);
    how = 'cold install';
  } else if (readFileSync(marker, 'utf8').trim() !== tgzHash) {
    cpSync(tgz, join(dir, 'nestjs-redis-lock.tgz'));
    must(await run('npm', ['install', '--no-audit', '--no-fund', '--prefer-offline', '--loglevel=error', 'nestjs-redis-lock@file:nestjs-redis-lock.tgz'], { cwd: dir, env, timeoutMs: 600_000 }), `npm install tarball (${row.name})`);
    how = 'cached deps, new tarball';
  } else {
    how = 'cached';
  }
  // Whatever the path, the installed package must be this tarball's content.
  for (const file of ['package.json', 'dist/index.js']) {
    const installed = readFileSync(join(dir, 'node_modules/nestjs-redis-lock', file));
    const packed = spawnSync('tar', ['-xOzf', tgz, `package/${file}`]).stdout;
    if (!installed.equals(packed)) throw new Error(`node_modules/nestjs-redis-lock/${file} in ${dir} is not the tarball's`);
  }
  writeFileSync(marker, tgzHash);
  const versions = Object.fromEntries(
    ['@nestjs/core', 'ioredis', 'typescript', 'jest', 'ts-jest'].map((name) => [name, JSON.parse(readFileSync(join(dir, 'node_modules', name, 'package.json'), 'utf8')).version]),
  );
  return { dir, how, ms: Date.now() - started, versions };
}

// ---------- one app ----------

function writeApp(row, depsDir) {
  const app = mkdtempSync(join(tmpdir(), `nrl-compat-${row.name}-`));
  symlinkSync(join(depsDir, 'node_modules'), join(app, 'node_modules'), 'dir');
  writeFileSync(join(app, 'package.json'), JSON.stringify({ name: `compat-${row.name}`, version: '0.0.0', private: true, ...row.packageJson }, null, 2));
  for (const [name, content] of Object.entries(row.files)) {
    writeFileSync(join(app, name), typeof content === 'string' ? content : JSON.stringify(content, null, 2));
  }
  mkdirSync(join(app, 'src'));
  for (const file of readdirSync(join(HERE, 'app/src'))) {
    const name = file.replace(/\.tmpl$/, '');
    const source = readFileSync(join(HERE, 'app/src', file), 'utf8').replaceAll('__EXT__', row.ext);
    writeFileSync(join(app, 'src', name), source);
  }
  return app;
}

async function startRedis() {
  const port = await freePort();
  const child = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  await new Promise((ok, fail) => {
    const timer = setTimeout(() => fail(new Error(`redis-server did not start:\n${out}`)), 15_000);
    child.stdout.on('data', (d) => {
      out += d;
      if (out.includes('Ready to accept connections')) { clearTimeout(timer); ok(); }
    });
    child.once('exit', (code) => { clearTimeout(timer); fail(new Error(`redis-server exited (${code}):\n${out}`)); });
  });
  return { port, stop: () => stopByPid(child) };
}

function stopByPid(child) {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((ok) => {
    const force = setTimeout(() => process.kill(child.pid, 'SIGKILL'), 5_000);
    child.once('exit', () => { clearTimeout(force); ok(); });
    process.kill(child.pid, 'SIGTERM');
  });
}

async function request(base, method, path) {
  const response = await fetch(base + path, { method });
  return { status: response.status, body: await response.text() };
}

/** b: the built app against a real Redis: one 409 while the winner holds, then the winner's 201. */
async function serveCheck(app, env) {
  const redis = await startRedis();
  const port = await freePort();
  const child = spawn('node', ['dist/main.js'], {
    cwd: app,
    env: { ...env, PORT: String(port), REDIS_URL: `redis://127.0.0.1:${redis.port}` },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout.on('data', (d) => (out += d));
  child.stderr.on('data', (d) => (out += d));
  const base = `http://127.0.0.1:${port}`;
  const fail = (why) => { throw new Error(`${why}\n--- app output ---\n${tail(out)}`); };
  try {
    const deadline = Date.now() + 60_000;
    while (!out.includes('compat-app listening')) {
      if (child.exitCode !== null) fail(`the app exited with ${child.exitCode} before listening`);
      if (Date.now() > deadline) fail('the app did not start listening within 60 s');
      await new Promise((r) => setTimeout(r, 50));
    }
    const health = await request(base, 'GET', '/health');
    if (health.status !== 200 || !health.body.includes('"locks"')) fail(`GET /health: ${health.status} ${health.body}`);

    const settled = [];
    const calls = [0, 1].map((i) => request(base, 'POST', '/orders/42').then((r) => (settled.push({ i, ...r }), r)));
    calls.forEach((p) => p.catch(() => {}));
    // The handler only finishes after /gate/open, so the first answer can only be the loser's 409.
    // If the lock let both in, `inside` reaches 2 and no answer comes: that is the failure.
    for (;;) {
      if (settled.length > 0) break;
      const { body } = await request(base, 'GET', '/gate');
      if (JSON.parse(body).inside >= 2) fail('both concurrent requests entered the @WithLock handler');
      if (child.exitCode !== null) fail('the app exited during the requests');
      await new Promise((r) => setTimeout(r, 20));
    }
    const first = settled[0];
    if (first.status !== 409) fail(`first answer: expected 409 while the other request holds the lock, got ${first.status} ${first.body}`);
    const holding = JSON.parse((await request(base, 'GET', '/gate')).body).inside;
    if (holding !== 1) fail(`expected the winner to be holding (inside = 1), got inside = ${holding}`);
    await request(base, 'POST', '/gate/open');
    const winner = await calls[1 - first.i];
    if (winner.status !== 201) fail(`the winner answered ${winner.status} ${winner.body}, expected 201`);
    const again = await request(base, 'POST', '/orders/42');
    if (again.status !== 201) fail(`after release, POST answered ${again.status}, expected 201`);
    return `409 then 201; /health 200`;
  } finally {
    await stopByPid(child);
    await redis.stop();
  }
}

async function runCell(row, app, node) {
  const env = { ...process.env, PATH: `${node.bin}:${process.env.PATH}`, NODE_OPTIONS: '', FORCE_COLOR: '0', CI: '1' };
  delete env.NODE_OPTIONS;
  const tsc = join(app, 'node_modules/typescript/bin/tsc');
  const cell = { node: node.label, steps: {} };
  const step = async (name, fn) => {
    const started = Date.now();
    try {
      const note = await fn();
      cell.steps[name] = { ok: true, ms: Date.now() - started, note };
    } catch (error) {
      cell.steps[name] = { ok: false, ms: Date.now() - started, error: String(error?.message ?? error) };
    }
  };
  const versionOut = spawnSync('node', ['--version'], { env, encoding: 'utf8' }).stdout.trim();
  cell.nodeVersion = versionOut;
  rmSync(join(app, 'dist'), { recursive: true, force: true });
  for (const f of readdirSync(app)) if (f.endsWith('.tsbuildinfo')) rmSync(join(app, f));
  await step('typecheck', async () => { must(await run('node', [tsc, '-p', 'tsconfig.json', '--noEmit'], { cwd: app, env }), 'tsc --noEmit'); });
  await step('serve', async () => {
    must(await run('node', [tsc, '-p', 'tsconfig.build.json'], { cwd: app, env }), 'tsc -p tsconfig.build.json');
    if (!existsSync(join(app, 'dist/main.js'))) throw new Error('the build did not produce dist/main.js');
    return serveCheck(app, env);
  });
  await step('jest', async () => {
    const needs = row.jestNeedsNode;
    if (needs && !atLeast(versionOut, needs.version)) {
      const result = await run('npm', ['test'], { cwd: app, env });
      if (result.code === 0) throw new Error(`jest passed on ${versionOut}: row.jestNeedsNode (${needs.version}) is out of date`);
      if (!needs.failure.test(result.out) || /Must use import to load ES Module: \S*node_modules\/nestjs-redis-lock\//.test(result.out)) {
        throw new Error(`jest failed, and not only for the upstream reason:\n${tail(result.out)}`);
      }
      cell.upstream = `jest needs Node >= ${needs.version} here (the scaffold's jest cannot require() ESM-only @nestjs/testing)`;
      return cell.upstream;
    }
    const result = must(await run('npm', ['test'], { cwd: app, env }), 'npm test (jest)');
    if (!/Tests:\s+1 passed, 1 total/.test(result.out)) throw new Error(`jest did not report 1 passed test:\n${tail(result.out)}`);
    const warnings = result.out.split('\n').filter((l) => /warning|deprecat/i.test(l) && !/^\s*at /.test(l));
    return warnings.length ? `warnings: ${[...new Set(warnings)].slice(0, 3).join(' | ')}` : undefined;
  });
  return cell;
}

// ---------- main ----------

const started = Date.now();
mkdirSync(CACHE, { recursive: true });
const tgz = await packTarball();
log(`tarball ${tgz}`);
const nodes = NODES.map(nodeBin);
const selected = rows.filter((row) => !ONLY || ONLY.includes(row.name));
if (selected.length === 0) throw new Error(`no row matches COMPAT_ROWS=${process.env.COMPAT_ROWS}`);
const results = [];
for (const row of selected) {
  let install;
  try {
    install = await installRow(row, tgz);
  } catch (error) {
    log(`${row.name}: install FAILED\n${error.message}`);
    results.push({ row, install: { how: 'FAILED', ms: 0, versions: {} }, cells: nodes.map((n) => ({ node: n.label, steps: { install: { ok: false, ms: 0, error: error.message } } })) });
    continue;
  }
  log(`${row.name}: ${install.how} in ${seconds(install.ms)} (${Object.entries(install.versions).map(([k, v]) => `${k} ${v}`).join(', ')})`);
  const app = writeApp(row, install.dir);
  const cells = [];
  for (const node of nodes) {
    const cell = await runCell(row, app, node);
    cells.push(cell);
    for (const [name, s] of Object.entries(cell.steps)) {
      log(`${row.name} on ${cell.nodeVersion}: ${name} ${s.ok ? 'ok' : 'FAILED'} ${seconds(s.ms)}${s.note ? ` (${s.note})` : ''}${s.ok ? '' : `\n${s.error}`}`);
    }
  }
  if (!KEEP) rmSync(app, { recursive: true, force: true });
  else log(`kept ${app}`);
  results.push({ row, install, cells });
}
if (!process.env.COMPAT_TGZ) rmSync(dirname(tgz), { recursive: true, force: true });

const lines = [];
lines.push(`| row | install | ${nodes.map((n) => n.label).join(' | ')} |`);
lines.push(`|---|---|${nodes.map(() => '---').join('|')}|`);
let failed = 0;
for (const { row, install, cells } of results) {
  const cols = cells.map((cell) => {
    const steps = Object.entries(cell.steps);
    const bad = steps.filter(([, s]) => !s.ok).map(([n]) => n);
    failed += bad.length;
    const ms = steps.reduce((sum, [, s]) => sum + s.ms, 0);
    if (bad.length) return `FAIL (${bad.join(', ')})`;
    return cell.upstream ? `pass ${seconds(ms)}, jest: upstream¹` : `pass ${seconds(ms)}`;
  });
  lines.push(`| ${row.name} | ${install.how} ${seconds(install.ms)} | ${cols.join(' | ')} |`);
}
console.log(`\n${lines.join('\n')}\n`);
const upstream = results.flatMap(({ cells }) => cells.map((c) => c.upstream)).find(Boolean);
if (upstream) console.log(`¹ ${upstream}; checked to fail exactly there, not in this package.\n`);
for (const { row, install } of results) console.log(`${row.name}: ${row.about}; resolved ${Object.entries(install.versions).map(([k, v]) => `${k} ${v}`).join(', ')}`);
writeFileSync(join(CACHE, 'last-results.json'), JSON.stringify(results.map(({ row, install, cells }) => ({ row: row.name, install, cells })), null, 2));
log(`total ${seconds(Date.now() - started)}; ${failed === 0 ? 'all cells pass' : `${failed} failed step(s)`}`);
process.exit(failed === 0 ? 0 : 1);

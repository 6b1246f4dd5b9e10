#!/usr/bin/env node
/**
 * `npm run demo`: the lock doing its job across processes.
 *
 * Starts 3 instances of the sample app (sample/, built to sample/dist) as separate Node processes
 * sharing one Redis, then sends 600 concurrent deposits of 1 onto 3 accounts, spread round-robin
 * over the instances: first to the unsafe endpoint (no lock), then to the locked one. Prints how
 * many updates were lost, and exits 0 only when the locked run is exact.
 *
 * Redis: REDIS_URL when set; otherwise a private redis-server from PATH on a free port (never
 * 6379), without persistence, stopped at the end. Every process started here is stopped on exit,
 * on error and on Ctrl-C.
 */
import { spawn, spawnSync } from 'node:child_process';
import net from 'node:net';
import os from 'node:os';
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';

const INSTANCES = 3;
const ACCOUNTS = ['alice', 'bob', 'carol'];
const REQUESTS = 600;
const IN_FLIGHT = 50;
const AMOUNT = 1;

const START_TIMEOUT_MS = 15_000;
const REQUEST_TIMEOUT_MS = 20_000;
const DEMO_TIMEOUT_MS = 55_000;
const STOP_GRACE_MS = 5_000;

const APP_MAIN = fileURLToPath(new URL('../sample/dist/main.js', import.meta.url));
const APP_READY = /listening on/;
const REDIS_READY = /Ready to accept connections/;

/** A failure with a message for the user (no stack trace). */
class DemoError extends Error {}

/** Aborted by finish(): cancels the requests still in flight. */
const interrupted = new AbortController();

/** Processes started by the demo, stopped in finish(). */
let redisServer = null;
const apps = [];

// ---------------------------------------------------------------------------------------------

async function main() {
  const redisUrl = await redisForDemo();
  await withRedis(redisUrl, (redis) => redis.ping()); // fail early and clearly if it is unreachable

  const ports = await freePorts(INSTANCES);
  console.log(`Starting ${INSTANCES} instances of the sample app (ports ${ports.join(', ')})...`);
  await Promise.all(ports.map((port) => startApp(port, redisUrl)));

  console.log(
    `\n${REQUESTS} concurrent deposits of ${AMOUNT} onto accounts ${ACCOUNTS.join(', ')}, ` +
      `round-robin over the ${INSTANCES} instances, ${IN_FLIGHT} in flight at a time:`,
  );
  const unsafe = await fireDeposits(redisUrl, 'unsafe', (id) => `/unsafe/accounts/${id}/deposit`);
  const locked = await fireDeposits(redisUrl, 'locked', (id) => `/accounts/${id}/deposit`);

  return report(unsafe, locked);
}

/** Resets the balances, sends the deposits, then reads the balances back. */
async function fireDeposits(redisUrl, label, pathOf) {
  await resetBalances(redisUrl);

  const deposited = Object.fromEntries(ACCOUNTS.map((id) => [id, 0])); // answered 200
  const statuses = {}; // status -> count
  const latencies = [];
  const progress = progressBar(label);
  const startedAt = performance.now();

  let next = 0;
  async function client() {
    while (next < REQUESTS && !finishing) {
      const i = next++;
      const app = apps[i % apps.length];
      const id = ACCOUNTS[(i + Math.floor(i / apps.length)) % ACCOUNTS.length]; // each account via each instance
      const sentAt = performance.now();
      const status = await post(`${app.url}${pathOf(id)}`, { amount: AMOUNT });
      latencies.push(performance.now() - sentAt);
      statuses[status] = (statuses[status] ?? 0) + 1;
      if (status === 200) deposited[id] += AMOUNT;
      progress.tick();
    }
  }
  await Promise.all(Array.from({ length: IN_FLIGHT }, client));
  if (finishing) throw new DemoError('interrupted');
  const seconds = (performance.now() - startedAt) / 1000;
  progress.done(seconds);

  const balances = {};
  for (const id of ACCOUNTS) balances[id] = await getBalance(apps[0].url, id);
  return { deposited, balances, statuses, latencies, seconds };
}

function report(unsafe, locked) {
  const sum = (perAccount) => Object.values(perAccount).reduce((a, b) => a + b, 0);
  const perAccount = (run) => ACCOUNTS.map((id) => `${id} ${run.balances[id]}/${run.deposited[id]}`).join(', ');
  const failures = (run) =>
    Object.entries(run.statuses)
      .filter(([status]) => status !== '200' && status !== '409')
      .map(([status, count]) => `${count} × ${status}`);

  console.log('\nResults (balance / expected, per account)');

  const unsafeLost = sum(unsafe.deposited) - sum(unsafe.balances);
  console.log(`  unsafe, no lock:   expected ${sum(unsafe.deposited)}, actual ${sum(unsafe.balances)}`);
  console.log(`                     ${perAccount(unsafe)}`);
  console.log(
    `                     → ${unsafeLost} updates lost (${percent(unsafeLost, sum(unsafe.deposited))}): ` +
      'concurrent requests read the same balance, and the later write overwrote the earlier one',
  );
  if (failures(unsafe).length) console.log(`                     failed requests: ${failures(unsafe).join(', ')}`);

  const exact = ACCOUNTS.every((id) => locked.balances[id] === locked.deposited[id]);
  const conflicts = locked.statuses[409] ?? 0;
  console.log(`  locked, withLock:  expected ${sum(locked.deposited)}, actual ${sum(locked.balances)}`);
  console.log(`                     ${perAccount(locked)}`);
  console.log(`                     → ${exact ? 'exact: no update lost' : 'NOT EXACT'}`);
  console.log(
    `                     latency p50 ${ms(percentile(locked.latencies, 50))}, p99 ${ms(percentile(locked.latencies, 99))}` +
      ` (unsafe: p50 ${ms(percentile(unsafe.latencies, 50))}, p99 ${ms(percentile(unsafe.latencies, 99))});` +
      ` 409 Conflict: ${conflicts}`,
  );
  if (failures(locked).length) console.log(`                     failed requests: ${failures(locked).join(', ')}`);

  const ok = exact && failures(locked).length === 0 && sum(locked.deposited) > 0;
  console.log(ok ? '\nOK: the locked run is exact.' : '\nFAILED: the locked run is not exact or had failed requests.');
  if (!ok) printAppOutput();
  return ok ? 0 : 1;
}

// --- HTTP ------------------------------------------------------------------------------------

/** POSTs JSON; resolves the HTTP status, or a short description of a network error. */
async function post(url, body) {
  try {
    const res = await fetch(url, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(body),
      signal: AbortSignal.any([interrupted.signal, AbortSignal.timeout(REQUEST_TIMEOUT_MS)]),
    });
    await res.arrayBuffer(); // read the body so the connection is reused
    return res.status;
  } catch (error) {
    return error.name === 'TimeoutError' ? 'timeout' : 'network error';
  }
}

async function getBalance(baseUrl, id) {
  const res = await fetch(`${baseUrl}/accounts/${id}`, { signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS) });
  if (!res.ok) throw new DemoError(`GET /accounts/${id} answered ${res.status}: ${await res.text()}`);
  return (await res.json()).balance;
}

async function resetBalances(redisUrl) {
  await withRedis(redisUrl, (redis) => redis.del(ACCOUNTS.map((id) => `sample:balance:${id}`)));
}

/** Runs `fn` with a short-lived Redis connection that fails fast. */
async function withRedis(url, fn) {
  const redis = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
  let connectionError; // e.g. ECONNREFUSED, more telling than the failed call's "Connection is closed"
  redis.on('error', (error) => (connectionError = error));
  try {
    await redis.connect();
    return await fn(redis);
  } catch (error) {
    throw new DemoError(`Cannot use Redis at ${redact(url)}: ${(connectionError ?? error).message}`);
  } finally {
    redis.disconnect();
  }
}

// --- Processes -------------------------------------------------------------------------------

/** REDIS_URL, or a private redis-server started for the demo. */
async function redisForDemo() {
  if (process.env.REDIS_URL) {
    console.log(`Using REDIS_URL=${redact(process.env.REDIS_URL)} (the demo overwrites keys sample:balance:*)`);
    return process.env.REDIS_URL;
  }
  if (spawnSync('redis-server', ['--version']).error) {
    throw new DemoError(
      'REDIS_URL is not set and redis-server is not on PATH.\n' +
        'Install Redis (Debian/Ubuntu: apt-get install -y redis-server; macOS: brew install redis),\n' +
        'or point the demo at a Redis: REDIS_URL=redis://host:6379 npm run demo',
    );
  }
  const [port] = await freePorts(1);
  console.log(`REDIS_URL is not set: starting a private redis-server on 127.0.0.1:${port} (stopped at the end)`);
  const args = ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'];
  redisServer = startProcess('redis-server', 'redis-server', args, { cwd: os.tmpdir() });
  await redisServer.ready(REDIS_READY);
  return `redis://127.0.0.1:${port}`;
}

async function startApp(port, redisUrl) {
  const app = startProcess(`app :${port}`, process.execPath, [APP_MAIN], {
    env: { ...process.env, PORT: String(port), REDIS_URL: redisUrl, NO_COLOR: '1' },
  });
  app.url = `http://127.0.0.1:${port}`;
  apps.push(app);
  await app.ready(APP_READY);
}

/**
 * Spawns a process and keeps the tail of its output (shown when something goes wrong).
 * `ready(pattern)` resolves once the output matches, and rejects if the process exits first.
 * Detached (own process group), so that Ctrl-C reaches only the demo, which then stops the apps
 * before redis-server.
 */
function startProcess(name, command, args, options) {
  const child = spawn(command, args, { ...options, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  const proc = { name, child, output: '', exited: false };
  const onOutput = (chunk) => (proc.output = (proc.output + chunk).split('\n').slice(-20).join('\n'));
  child.stdout.on('data', onOutput);
  child.stderr.on('data', onOutput);
  const exited = new Promise((resolve) => {
    child.on('error', (error) => resolve(`could not be started (${error.message})`));
    child.on('exit', (code, signal) => resolve(`exited (${signal ?? `code ${code}`})`));
  }).then((why) => {
    proc.exited = true;
    return why;
  });
  proc.exitedPromise = exited;

  proc.ready = (pattern) =>
    new Promise((resolve, reject) => {
      const fail = (why) => reject(new DemoError(`${name} ${why}. Its output:\n${indent(proc.output)}`));
      const timer = setTimeout(() => fail(`did not start within ${START_TIMEOUT_MS / 1000} s`), START_TIMEOUT_MS);
      const check = () => {
        if (!pattern.test(proc.output)) return;
        clearTimeout(timer);
        resolve();
      };
      child.stdout.on('data', check);
      exited.then((why) => {
        clearTimeout(timer);
        fail(why);
      });
    });
  return proc;
}

/** SIGTERM (the apps release their locks and close their connections), SIGKILL after a grace period. */
async function stop(proc) {
  if (!proc || proc.exited) return;
  const timer = setTimeout(() => proc.child.kill('SIGKILL'), STOP_GRACE_MS);
  proc.child.kill('SIGTERM');
  await proc.exitedPromise;
  clearTimeout(timer);
}

function printAppOutput() {
  for (const app of apps) console.log(`\n--- output of ${app.name} ---\n${indent(app.output)}`);
}

let finishing = false;
/** Stops the apps, then redis-server, then exits. Runs once. */
async function finish(code) {
  if (finishing) return;
  finishing = true;
  interrupted.abort();
  await Promise.all(apps.map(stop));
  if (redisServer && !redisServer.exited) {
    await stop(redisServer);
    console.log('Stopped the private redis-server.');
  }
  process.exit(code);
}

// Last resort if the demo dies without going through finish(): never leave a process behind.
process.on('exit', () => {
  for (const proc of [...apps, redisServer]) if (proc && !proc.exited) proc.child.kill('SIGKILL');
});
for (const signal of ['SIGINT', 'SIGTERM']) {
  process.on(signal, () => {
    if (!finishing) console.log(`\n${signal}: stopping...`);
    finish(130);
  });
}
setTimeout(() => {
  console.error(`\nThe demo did not finish within ${DEMO_TIMEOUT_MS / 1000} s; stopping.`);
  printAppOutput();
  finish(1);
}, DEMO_TIMEOUT_MS).unref();

// --- Small helpers ---------------------------------------------------------------------------

/** Distinct free TCP ports (held open together so they differ), never Redis' default 6379. */
async function freePorts(count) {
  const servers = [];
  const ports = [];
  try {
    while (ports.length < count) {
      const server = net.createServer();
      await new Promise((resolve, reject) => server.once('error', reject).listen(0, resolve));
      servers.push(server);
      if (server.address().port !== 6379) ports.push(server.address().port);
    }
    return ports;
  } finally {
    await Promise.all(servers.map((server) => new Promise((resolve) => server.close(resolve))));
  }
}

function progressBar(label) {
  const width = 30;
  let done = 0;
  const draw = () => {
    const filled = Math.round((done / REQUESTS) * width);
    process.stdout.write(`\r  ${label.padEnd(7)} [${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${done}/${REQUESTS}`);
  };
  return {
    tick() {
      done++;
      if (process.stdout.isTTY && (done % 10 === 0 || done === REQUESTS)) draw();
    },
    done(seconds) {
      draw();
      process.stdout.write(` in ${seconds.toFixed(1)} s\n`);
    },
  };
}

function percentile(values, p) {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] ?? NaN;
}

const ms = (value) => `${Math.round(value)} ms`;
const percent = (part, whole) => `${whole ? Math.round((100 * part) / whole) : 0}%`;
const indent = (text) => (text.trim() || '(no output)').replace(/^/gm, '    ');

function redact(url) {
  try {
    const parsed = new URL(url);
    if (parsed.password) parsed.password = '***';
    return parsed.toString();
  } catch {
    return '(unparsable URL)';
  }
}

// ---------------------------------------------------------------------------------------------

main().then(finish, (error) => {
  if (finishing) return; // interrupted: finish() is already stopping everything
  console.error(`\n${error instanceof DemoError ? error.message : error?.stack ?? error}`);
  finish(1);
});

#!/usr/bin/env node
/**
 * `npm run demo`: the lock doing its job across processes.
 *
 * Starts 3 instances of the sample app (sample/, built to sample/dist) as separate Node processes
 * sharing one Redis, opens 3 accounts with 1000 each, then sends 600 concurrent requests of 1
 * (deposits, withdrawals and transfers between the accounts), spread round-robin over the
 * instances: first to the unsafe endpoints (no lock), then to the locked ones. Prints the
 * balances against what the answered requests add up to. Then it watches 3 ticks of the sample's
 * @Cron job, which every instance schedules, and checks that exactly one instance ran each tick.
 * Last, it shows which instance leads the sample's @Leader reconciler, stops that instance, and
 * shows another taking over (with a larger epoch) without waiting for the leader's lease.
 * Exits 0 only when the locked run is exact (every balance right, money conserved), the job ran
 * once per tick and the leader handed over.
 *
 * Redis: REDIS_URL when set; otherwise a private redis-server from PATH on a free port (never
 * 6379), without persistence, stopped at the end. Every process started here is stopped on exit,
 * on error and on Ctrl-C.
 *
 * Without Redis (REDIS_URL unset and no redis-server on PATH), or with DEMO_STORE=memory, it falls
 * back to running the 3 instances inside this one process (sample/src/in-process.ts), against
 * LockModule.forRoot({ store: 'memory' }) and an in-memory ledger shared by the apps, under a
 * banner that says so. The requests and the checks are the same. DEMO_STORE=redis forbids the
 * fallback: no Redis is then an error.
 */
import { spawn, spawnSync } from 'node:child_process';
import { setTimeout as setTimeoutPromise } from 'node:timers/promises';
import net from 'node:net';
import os from 'node:os';
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';

const INSTANCES = 3;
const ACCOUNTS = ['alice', 'bob', 'carol'];
const OPENING_BALANCE = 1000;
const REQUESTS = 600;
const IN_FLIGHT = 50;
const AMOUNT = 1;

// sample/src/interest.job.ts: @Cron every 2 s, recording `<tick second>:<PORT>` in CRON_RUNS per run.
const CRON_EVERY_S = 2;
const CRON_TICKS = 3;
const CRON_RUNS = 'sample:cron:runs';
/** How late after its tick a run is still looked for before the runs are counted. */
const CRON_SETTLE_MS = 1_000;

// sample/src/reconciler.job.ts: @Leader('leader:reconciler'), recording its PORT with its epoch here.
const LEADER_RECORD = 'sample:leader';
/** Deadline for a leader to show up, and for the hand-over after it is stopped. */
const LEADER_TIMEOUT_MS = 15_000;

const START_TIMEOUT_MS = 15_000;
const REQUEST_TIMEOUT_MS = 20_000;
const DEMO_TIMEOUT_MS = 55_000;
const STOP_GRACE_MS = 5_000;

const APP_MAIN = fileURLToPath(new URL('../sample/dist/main.js', import.meta.url));
const APP_IN_PROCESS = new URL('../sample/dist/in-process.js', import.meta.url).href;
const APP_READY = /listening on/;
const REDIS_READY = /Ready to accept connections/;

/** A failure with a message for the user (no stack trace). */
class DemoError extends Error {}

/** Aborted by finish(): cancels the requests still in flight. */
const interrupted = new AbortController();

/** The instances' base URLs, in the order requests go round-robin. */
let urls = [];
/** Processes started by the demo, stopped in finish(). */
let redisServer = null;
const apps = [];
/** In-process mode: the sample's startInProcess() result, closed in finish(), and its log tail. */
let inProcess = null;

// ---------------------------------------------------------------------------------------------

async function main() {
  const store = demoStore();
  const bank = store.memory ? await inProcessBank(store.why) : await redisBank();

  const count = (kind) => Array.from({ length: REQUESTS }, (_, i) => operation(i)).filter((op) => op.kind === kind).length;
  console.log(
    `\nAccounts ${ACCOUNTS.join(', ')} opened with ${OPENING_BALANCE} each; ${REQUESTS} concurrent requests of ` +
      `${AMOUNT} (${count('deposit')} deposits, ${count('withdraw')} withdrawals, ${count('transfer')} transfers ` +
      `between them), round-robin over the ${INSTANCES} instances, ${IN_FLIGHT} in flight at a time:`,
  );
  const unsafe = await fireRequests(bank, 'unsafe', '/unsafe');
  const locked = await fireRequests(bank, 'locked', '');
  const bankOk = reportBank(unsafe, locked);

  const cronOk = reportCron(await watchCron(bank));
  const leaderOk = await watchLeader(bank);

  if (bankOk && cronOk && leaderOk) {
    console.log('\nOK: the locked run is exact and the cron job ran once per tick.');
    if (store.memory) {
      console.log(
        `(In one process, with store: 'memory'. For the run across processes, install Redis: ${INSTALL_REDIS}.)`,
      );
    }
    return 0;
  }
  const failed = [];
  if (!bankOk) failed.push('the locked run is not exact or had failed requests');
  if (!cronOk) failed.push('the cron job did not run exactly once per tick');
  if (!leaderOk) failed.push('the leader did not hand over when it was stopped');
  console.log(`\nFAILED: ${failed.join('; ')}.`);
  printAppOutput();
  return 1;
}

/**
 * Request i: which endpoint, which account(s), and what it does to the balances once answered
 * 200. Every account is reached through every instance, by every kind of request.
 */
function operation(i) {
  const a = (i + Math.floor(i / INSTANCES)) % ACCOUNTS.length;
  const id = ACCOUNTS[a];
  const body = { amount: AMOUNT };
  switch (i % 4) {
    case 2:
      return { kind: 'withdraw', path: `/accounts/${id}/withdraw`, body, apply: (b) => (b[id] -= AMOUNT) };
    case 3: {
      const to = ACCOUNTS[(a + 1 + (Math.floor(i / 4) % 2)) % ACCOUNTS.length]; // both directions
      return {
        kind: 'transfer',
        path: '/transfers',
        body: { from: id, to, amount: AMOUNT },
        apply: (b) => {
          b[id] -= AMOUNT;
          b[to] += AMOUNT;
        },
      };
    }
    default:
      return { kind: 'deposit', path: `/accounts/${id}/deposit`, body, apply: (b) => (b[id] += AMOUNT) };
  }
}

/** Opens the accounts afresh, sends the requests, then reads the balances back. */
async function fireRequests(bank, label, prefix) {
  await bank.openAccounts();

  const expected = Object.fromEntries(ACCOUNTS.map((id) => [id, OPENING_BALANCE])); // from the answered 200s
  const moved = { deposit: 0, withdraw: 0, transfer: 0 }; // answered 200, per kind
  const statuses = {}; // status -> count
  const latencies = [];
  const progress = progressBar(label);
  const startedAt = performance.now();

  let next = 0;
  async function client() {
    while (next < REQUESTS && !finishing) {
      const i = next++;
      const url = urls[i % urls.length];
      const op = operation(i);
      const sentAt = performance.now();
      const status = await post(`${url}${prefix}${op.path}`, op.body);
      latencies.push(performance.now() - sentAt);
      statuses[status] = (statuses[status] ?? 0) + 1;
      if (status === 200) {
        op.apply(expected);
        moved[op.kind] += AMOUNT;
      }
      progress.tick();
    }
  }
  await Promise.all(Array.from({ length: IN_FLIGHT }, client));
  if (finishing) throw new DemoError('interrupted');
  const seconds = (performance.now() - startedAt) / 1000;
  progress.done(seconds);

  const balances = {};
  for (const id of ACCOUNTS) balances[id] = await getBalance(urls[0], id);
  return { expected, moved, balances, statuses, latencies, seconds };
}

/** Prints both runs; true when the locked one is exact. */
function reportBank(unsafe, locked) {
  const sum = (perAccount) => Object.values(perAccount).reduce((a, b) => a + b, 0);
  const perAccount = (run) => ACCOUNTS.map((id) => `${id} ${run.balances[id]}/${run.expected[id]}`).join(', ');
  const wrong = (run) => ACCOUNTS.filter((id) => run.balances[id] !== run.expected[id]);
  const offBy = (run) => ACCOUNTS.reduce((total, id) => total + Math.abs(run.balances[id] - run.expected[id]), 0);
  // Deposits and withdrawals change the bank's total; transfers must not.
  const moneyShouldBe = (run) => ACCOUNTS.length * OPENING_BALANCE + run.moved.deposit - run.moved.withdraw;
  const failures = (run) =>
    Object.entries(run.statuses)
      .filter(([status]) => !['200', '409', '422'].includes(status))
      .map(([status, count]) => `${count} × ${status}`);
  const pad = ' '.repeat(21);

  console.log(`\nResults: balance / expected per account (expected: opening ${OPENING_BALANCE} + what the 200 answers moved)`);

  const unsafeMoney = sum(unsafe.balances) - moneyShouldBe(unsafe);
  console.log(`  unsafe, no lock:   ${perAccount(unsafe)}`);
  console.log(
    `${pad}→ ${wrong(unsafe).length} of ${ACCOUNTS.length} accounts wrong, off by ${offBy(unsafe)} in all: ` +
      `at least ${offBy(unsafe)} updates lost`,
  );
  console.log(
    `${pad}  total money ${sum(unsafe.balances)}, should be ${moneyShouldBe(unsafe)}` +
      (unsafeMoney ? `: ${Math.abs(unsafeMoney)} ${unsafeMoney > 0 ? 'created from nothing' : 'vanished'}` : ''),
  );
  console.log(`${pad}  concurrent requests read the same balance, and the later write overwrote the earlier one`);
  if (failures(unsafe).length) console.log(`${pad}failed requests: ${failures(unsafe).join(', ')}`);

  const exact = wrong(locked).length === 0;
  const conserved = sum(locked.balances) === moneyShouldBe(locked);
  console.log(`  locked, @WithLock: ${perAccount(locked)}`);
  console.log(`${pad}→ ${exact ? 'exact: every balance right, no update lost' : `NOT EXACT: ${wrong(locked).join(', ')} wrong`}`);
  console.log(
    `${pad}  total money ${sum(locked.balances)}` +
      (conserved
        ? ` = ${ACCOUNTS.length * OPENING_BALANCE} + ${locked.moved.deposit} deposited − ${locked.moved.withdraw} withdrawn: ` +
          `conserved (transfers moved ${locked.moved.transfer} without creating or losing any)`
        : `, should be ${moneyShouldBe(locked)}: NOT CONSERVED`),
  );
  console.log(
    `${pad}  latency p50 ${ms(percentile(locked.latencies, 50))}, p99 ${ms(percentile(locked.latencies, 99))}` +
      ` (unsafe: p50 ${ms(percentile(unsafe.latencies, 50))}, p99 ${ms(percentile(unsafe.latencies, 99))});` +
      ` 409 Conflict: ${locked.statuses[409] ?? 0}`,
  );
  if (failures(locked).length) console.log(`${pad}failed requests: ${failures(locked).join(', ')}`);

  const applied = locked.moved.deposit + locked.moved.withdraw + locked.moved.transfer;
  return exact && conserved && failures(locked).length === 0 && applied > 0;
}

/**
 * Waits for the next CRON_TICKS ticks of the interest job, then reads which instances ran each:
 * a Map from tick (epoch second) to the instances (PORTs) that recorded a run for it.
 */
async function watchCron(bank) {
  const periodMs = CRON_EVERY_S * 1000;
  const first = Math.ceil((Date.now() + 100) / periodMs) * periodMs; // the next tick still ahead
  const ticks = Array.from({ length: CRON_TICKS }, (_, n) => (first + n * periodMs) / 1000);
  console.log(
    `\nCron: all ${INSTANCES} instances schedule the interest job every ${CRON_EVERY_S} s, under ` +
      `@WithLock('job:interest', { wait: 0, onBusy: 'skip' }); watching ${CRON_TICKS} ticks...`,
  );
  await abortableSleep(ticks.at(-1) * 1000 + CRON_SETTLE_MS - Date.now());

  const runs = new Map(ticks.map((tick) => [tick, []]));
  for (const entry of await bank.cronRuns()) {
    const [tick, instance] = entry.split(':');
    runs.get(Number(tick))?.push(instance);
  }
  return runs;
}

/** Prints one line per tick; true when every tick ran on exactly one instance. */
function reportCron(runs) {
  for (const [tick, instances] of runs) {
    const where = instances.length ? instances.map((port) => `:${port}`).join(', ') : 'no instance';
    const verdict = instances.length === 1 ? '' : instances.length ? `  ← ${instances.length} runs` : '  ← missed';
    console.log(`  tick ${new Date(tick * 1000).toTimeString().slice(0, 8)}  ran on ${where}${verdict}`);
  }
  const once = [...runs.values()].every((instances) => instances.length === 1);
  console.log(
    once
      ? `  → the cron job ran on exactly one instance per tick (${runs.size} ticks; the other instances skipped)`
      : '  → NOT once per tick',
  );
  return once;
}

/**
 * The sample's @Leader reconciler: shows which instance leads, stops that instance (SIGTERM, or
 * app.close() in-process: it resigns on shutdown) and shows another taking over with a larger
 * epoch, without waiting for the leader's lease to run out. True when it did.
 */
async function watchLeader(bank) {
  console.log(
    `\nLeader: all ${INSTANCES} instances campaign for @Leader('leader:reconciler'); one runs the reconciler.`,
  );
  const first = await pollFor(() => bank.leader(), (record) => record !== undefined);
  if (!first) {
    console.log(`  → NO leader within ${LEADER_TIMEOUT_MS / 1000} s`);
    return false;
  }
  console.log(`  instance :${first.value} leads (epoch ${first.fence}); stopping it...`);
  const stoppedAt = Date.now();
  await bank.stopInstance(first.value);
  const next = await pollFor(() => bank.leader(), (record) => record !== undefined && record.fence > first.fence);
  if (!next) {
    console.log(`  → NO hand-over within ${LEADER_TIMEOUT_MS / 1000} s after :${first.value} stopped`);
    return false;
  }
  console.log(`  instance :${next.value} took over (epoch ${next.fence}), ${Date.now() - stoppedAt} ms after :${first.value} was told to stop`);
  console.log('  → the stopped leader resigned on shutdown, so another took over without waiting for its 5 s lease');
  return true;
}

/** Polls `read` until `done(value)`; the value, or undefined after LEADER_TIMEOUT_MS. */
async function pollFor(read, done) {
  const deadline = Date.now() + LEADER_TIMEOUT_MS;
  for (;;) {
    const value = await read();
    if (done(value)) return value;
    if (Date.now() > deadline) return undefined;
    await abortableSleep(50);
  }
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

// --- The bank: 3 processes and Redis, or 3 apps in this process ------------------------------
//
// Either way, the demo gets { openAccounts(), cronRuns() } to reach the bank's data, and `urls`
// to send the requests to.

const INSTALL_REDIS = 'apt-get install -y redis-server (Debian/Ubuntu) or brew install redis (macOS)';

/** DEMO_STORE=memory | redis, else Redis when there is one and the in-process fallback when not. */
function demoStore() {
  const forced = process.env.DEMO_STORE;
  if (forced === 'memory') return { memory: true, why: 'DEMO_STORE=memory' };
  if (forced === 'redis') return { memory: false };
  if (forced) throw new DemoError(`DEMO_STORE must be 'redis' or 'memory', not '${forced}'`);
  if (process.env.REDIS_URL || !spawnSync('redis-server', ['--version']).error) return { memory: false };
  return { memory: true, why: 'REDIS_URL is not set and redis-server is not on PATH' };
}

/** The real thing: 3 processes sharing one Redis (REDIS_URL, or a private redis-server). */
async function redisBank() {
  const redisUrl = await redisForDemo();
  // Fails early and clearly if Redis is unreachable; forgets the runs of an earlier demo.
  await withRedis(redisUrl, (redis) => redis.del(CRON_RUNS, LEADER_RECORD));

  const ports = await freePorts(INSTANCES);
  console.log(`Starting ${INSTANCES} instances of the sample app (ports ${ports.join(', ')})...`);
  urls = ports.map((port) => `http://127.0.0.1:${port}`);
  await Promise.all(ports.map((port) => startApp(port, redisUrl)));
  return {
    openAccounts: () =>
      withRedis(redisUrl, (redis) =>
        redis.mset(Object.fromEntries(ACCOUNTS.map((id) => [`sample:balance:${id}`, OPENING_BALANCE]))),
      ),
    cronRuns: () => withRedis(redisUrl, (redis) => redis.lrange(CRON_RUNS, 0, -1)),
    leader: () =>
      withRedis(redisUrl, async (redis) => {
        const { fence, value } = await redis.hgetall(LEADER_RECORD);
        return fence === undefined ? undefined : { fence: Number(fence), value };
      }),
    stopInstance: (port) => stop(apps.find((app) => app.name === `app :${port}`)),
  };
}

/**
 * The fallback: the 3 instances as 3 Nest apps inside this process, against
 * LockModule.forRoot({ store: 'memory' }) and the sample's in-memory ledger, both shared by the
 * apps in this process (a fresh one: no cron runs yet). The requests still go over HTTP.
 */
async function inProcessBank(why) {
  const rule = '─'.repeat(100);
  console.log(
    [
      rule,
      `IN-PROCESS MODE (${why}).`,
      `The ${INSTANCES} instances run inside THIS ONE PROCESS, against LockModule.forRoot({ store: 'memory' }) and an`,
      'in-memory ledger, both shared by the apps in the process. The locks work the same, but not across',
      'processes, which is what they are for. For the real run (3 processes sharing one Redis):',
      why.startsWith('DEMO_STORE')
        ? '  run the demo without DEMO_STORE, with redis-server on PATH or REDIS_URL set.'
        : `  install Redis, ${INSTALL_REDIS},\n  or point the demo at one: REDIS_URL=redis://host:6379 npm run demo`,
      rule,
    ].join('\n'),
  );

  const ports = await freePorts(INSTANCES);
  console.log(`Starting ${INSTANCES} instances of the sample app in this process (ports ${ports.join(', ')})...`);
  // One log for the three apps (Nest's logger is per process), kept for printAppOutput().
  inProcess = { name: `the ${INSTANCES} in-process apps`, output: '', instances: null };
  const keep = (level) => (message, ...params) => {
    const context = params.length ? `[${params.pop()}]` : ''; // Nest passes the context last
    const line = [level.toUpperCase(), context, message instanceof Error ? message.stack : message, ...params].join(' ');
    inProcess.output = `${inProcess.output}\n${line}`.split('\n').slice(-30).join('\n');
  };
  const logger = Object.fromEntries(['log', 'error', 'warn', 'debug', 'verbose', 'fatal'].map((level) => [level, keep(level)]));

  const { startInProcess } = await import(APP_IN_PROCESS);
  inProcess.instances = await startInProcess(ports, { logger });
  urls = ports.map((port) => `http://127.0.0.1:${port}`);
  const { ledger } = inProcess.instances;
  return {
    openAccounts: () => Promise.all(ACCOUNTS.map((id) => ledger.setBalance(id, OPENING_BALANCE))),
    cronRuns: () => ledger.cronRuns(),
    leader: () => ledger.readFenced(LEADER_RECORD),
    stopInstance: async (port) => {
      // Out of the list that finish() closes, then closed: its leader resigns on shutdown.
      const [app] = inProcess.instances.apps.splice(ports.indexOf(Number(port)), 1);
      await app.close();
    },
  };
}

// --- Processes -------------------------------------------------------------------------------

/** REDIS_URL, or a private redis-server started for the demo. */
async function redisForDemo() {
  if (process.env.REDIS_URL) {
    console.log(`Using REDIS_URL=${redact(process.env.REDIS_URL)} (the demo overwrites its keys sample:*)`);
    return process.env.REDIS_URL;
  }
  if (spawnSync('redis-server', ['--version']).error) {
    throw new DemoError(
      'DEMO_STORE=redis, but REDIS_URL is not set and redis-server is not on PATH.\n' +
        'Install Redis (Debian/Ubuntu: apt-get install -y redis-server; macOS: brew install redis),\n' +
        'or point the demo at a Redis: REDIS_URL=redis://host:6379 npm run demo\n' +
        '(without DEMO_STORE, the demo would run the instances in one process, with store: memory)',
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
    env: { ...process.env, PORT: String(port), REDIS_URL: redisUrl, SAMPLE_STORE: 'redis', NO_COLOR: '1' },
  });
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
  const outputs = inProcess ? [...apps, inProcess] : apps;
  for (const { name, output } of outputs) console.log(`\n--- output of ${name} ---\n${indent(output)}`);
}

let finishing = false;
/** Stops the apps, then redis-server, then exits. Runs once. */
async function finish(code) {
  if (finishing) return;
  finishing = true;
  interrupted.abort();
  await Promise.all(apps.map(stop));
  if (inProcess?.instances) await Promise.race([inProcess.instances.close(), setTimeoutPromise(STOP_GRACE_MS)]);
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

/** Sleeps, unless the demo is being stopped. */
async function abortableSleep(delayMs) {
  await new Promise((resolve) => {
    const timer = setTimeout(resolve, Math.max(0, delayMs));
    interrupted.signal.addEventListener('abort', () => {
      clearTimeout(timer);
      resolve();
    });
  });
  if (finishing) throw new DemoError('interrupted');
}

function percentile(values, p) {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] ?? NaN;
}

const ms = (value) => `${Math.round(value)} ms`;
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

/**
 * `npm run demo`, end to end: scripts/demo.mjs as a child process, once as 3 processes sharing a
 * private redis-server that the demo starts itself, and once in its in-process fallback
 * (DEMO_STORE=memory: 3 Nest apps in one process, `store: 'memory'`). Each must exit 0 and print
 * its verdicts: the locked run exact, money conserved, the cron job once per tick.
 *
 * Uses the built package (dist/, built by `npm test`'s pretest) and builds the sample itself.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import net from 'node:net';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const DEMO = fileURLToPath(new URL('../scripts/demo.mjs', import.meta.url));
const CASE_TIMEOUT_MS = 120_000;
const STOP_GRACE_MS = 10_000;

const VERDICTS = [
  '→ exact: every balance right, no update lost',
  'conserved (transfers moved',
  '→ the cron job ran on exactly one instance per tick',
  'OK: the locked run is exact and the cron job ran once per tick.',
];

/** Demo processes still running: stopped in afterAll, whatever happened. */
const running = new Set<ChildProcess>();

interface DemoRun {
  code: number | null;
  signal: NodeJS.Signals | null;
  output: string;
}

function runDemo(env: Record<string, string>): Promise<DemoRun> {
  const childEnv: NodeJS.ProcessEnv = { ...process.env, NO_COLOR: '1', ...env };
  delete childEnv.NODE_OPTIONS; // jest's --experimental-vm-modules is not for the demo
  delete childEnv.REDIS_URL; // never a Redis of the developer's: the demo starts its own
  delete childEnv.SAMPLE_STORE;
  const child = spawn(process.execPath, [DEMO], { cwd: ROOT, env: childEnv, stdio: ['ignore', 'pipe', 'pipe'] });
  running.add(child);
  let output = '';
  child.stdout!.on('data', (chunk: Buffer) => (output += chunk));
  child.stderr!.on('data', (chunk: Buffer) => (output += chunk));
  return new Promise((resolve, reject) => {
    child.on('error', reject);
    child.on('exit', (code, signal) => {
      running.delete(child);
      resolve({ code, signal, output });
    });
  });
}

/**
 * Stops a demo still running: SIGTERM first, so that it stops what it started (its apps and
 * redis-server run in their own process groups), SIGKILL if it does not exit in time.
 */
async function stop(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGTERM');
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([exited, new Promise<void>((resolve) => (timer = setTimeout(resolve, STOP_GRACE_MS)))]);
  clearTimeout(timer);
  if (child.exitCode === null && child.signalCode === null) {
    child.kill('SIGKILL');
    await exited;
  }
}

/** The ports the demo reported: its apps' and, in the Redis mode, its redis-server's. */
function portsIn(output: string): number[] {
  const apps = /\(ports (\d+), (\d+), (\d+)\)/.exec(output);
  const redis = /private redis-server on 127\.0\.0\.1:(\d+)/.exec(output);
  return [...(apps?.slice(1) ?? []), ...(redis?.slice(1) ?? [])].map(Number);
}

/** True when something accepts connections on 127.0.0.1:port. */
function listening(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ host: '127.0.0.1', port });
    socket.setTimeout(2_000);
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
    socket.once('timeout', () => {
      socket.destroy();
      resolve(false);
    });
  });
}

/** Exit code 0 and every verdict line; on failure, the message shows the demo's whole output. */
function expectSuccess(run: DemoRun): void {
  const missing = VERDICTS.filter((line) => !run.output.includes(line));
  if (run.code !== 0 || missing.length) {
    const how = run.signal ? `was killed by ${run.signal}` : `exited with code ${run.code}`;
    throw new Error(`the demo ${how}; verdicts missing: ${JSON.stringify(missing)}. Its output:\n${run.output}`);
  }
}

async function expectNothingLeftListening(run: DemoRun, count: number): Promise<void> {
  const ports = portsIn(run.output);
  expect(ports).toHaveLength(count);
  for (const port of ports) expect({ port, listening: await listening(port) }).toEqual({ port, listening: false });
}

describe('npm run demo (scripts/demo.mjs)', () => {
  beforeAll(() => {
    if (!existsSync(new URL('../dist/index.js', import.meta.url))) {
      throw new Error('dist/ is missing: build the package first (npm run build; npm test does it)');
    }
    const tsc = fileURLToPath(new URL('../node_modules/.bin/tsc', import.meta.url));
    const build = spawnSync(tsc, ['-p', 'sample/tsconfig.json'], { cwd: ROOT, encoding: 'utf8' });
    if (build.status !== 0) throw new Error(`tsc -p sample/tsconfig.json failed:\n${build.stdout}${build.stderr}`);
  }, CASE_TIMEOUT_MS);

  afterAll(async () => {
    await Promise.all([...running].map(stop));
  }, 2 * STOP_GRACE_MS);

  it(
    'with Redis: 3 processes and a private redis-server, exact and once per tick',
    async () => {
      // DEMO_STORE=redis: no silent fallback to the in-process mode if redis-server is missing.
      const run = await runDemo({ DEMO_STORE: 'redis' });
      expectSuccess(run);
      expect(run.output).toContain('starting a private redis-server');
      expect(run.output).toContain('Stopped the private redis-server.');
      expect(run.output).not.toContain('IN-PROCESS MODE');
      await expectNothingLeftListening(run, 4);
    },
    CASE_TIMEOUT_MS,
  );

  it(
    "without Redis: 3 apps in one process on store: 'memory', exact and once per tick",
    async () => {
      const run = await runDemo({ DEMO_STORE: 'memory' });
      expectSuccess(run);
      expect(run.output).toContain('IN-PROCESS MODE (DEMO_STORE=memory)');
      expect(run.output).toContain("LockModule.forRoot({ store: 'memory' })");
      expect(run.output).not.toContain('redis-server on 127.0.0.1');
      await expectNothingLeftListening(run, 3);
    },
    CASE_TIMEOUT_MS,
  );
});

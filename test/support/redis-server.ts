/**
 * Test harness: throw-away `redis-server` processes for integration tests.
 *
 * Every server runs on a free port picked for it (never 6379), bound to
 * 127.0.0.1, with persistence off and a fresh temp dir. The harness only ever
 * signals processes it spawned itself (through their ChildProcess handles), so
 * a developer's own Redis is never touched.
 *
 *   const server = await RedisServer.start();
 *   const redis = server.client();
 *   ...
 *   await redis.quit();
 *   afterAll(() => stopAllRedisServers());
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net, { type AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
// Timers from the module, not the globals: jest.useFakeTimers() replaces the
// test sandbox's global timers but not these, so the harness keeps working.
import { clearInterval, clearTimeout, setInterval, setTimeout } from 'node:timers';
import util from 'node:util';
// ioredis 6 is CommonJS. Under NodeNext + ESM, TypeScript types a default
// import as the whole module object (not constructable), so use the named
// export, which works both at runtime (Node ESM and Jest ESM) and for tsc.
import { Redis, type RedisOptions } from 'ioredis';

export interface RedisServerOptions {
  /** Extra redis-server CLI args, e.g. `['--maxmemory', '10mb']`. */
  args?: string[];
  /** Started with `--requirepass <password>`; `client()` and `url` carry it. */
  password?: string;
  /**
   * Contents of a config file. It is written to `<temp dir>/redis.conf` and
   * passed as redis-server's first argument, so the harness's own CLI args
   * (`--port`, `--bind`, `--dir`, ...) and `args` override its directives.
   * Needed e.g. for `--sentinel`, which requires a (writable) config file. The
   * file survives kill() + restart() (a server may have rewritten it); after
   * stop() the next start gets a fresh copy.
   */
  config?: string;
  /**
   * Extra constraint on the port picked for the server (it is already free and
   * never 6379), e.g. that `port + 10000` is free too for a cluster bus.
   */
  acceptPort?: (port: number) => boolean | Promise<boolean>;
}

const HOST = '127.0.0.1';
const FORBIDDEN_PORT = 6379;
const READY_TIMEOUT_MS = 10_000;
const POLL_INTERVAL_MS = 20;
const PROBE_TIMEOUT_MS = 1_000;
const STOP_GRACE_MS = 5_000;
const MAX_OUTPUT_LINES = 50;
const MAX_START_ATTEMPTS = 5;
const MAX_RESTART_ATTEMPTS = 5;

export const REDIS_SERVER_NOT_FOUND_MESSAGE =
  'redis-server not found on PATH. Install it: apt-get install -y redis-server redis-tools (Debian/Ubuntu) or brew install redis (macOS)';

/** The chosen port was taken by someone else before redis-server could bind it. */
class PortInUseError extends Error {
  override name = 'PortInUseError';
}

// ---------------------------------------------------------------------------
// Process-wide safety net
// ---------------------------------------------------------------------------

interface SharedRegistry {
  /** PIDs of redis-server processes spawned by this harness and not yet exited. */
  pids: Set<number>;
  /** Temp dirs created by this harness and not yet removed. */
  dirs: Set<string>;
}

const REGISTRY_KEY = Symbol.for('nestjs-redis-lock.test.redis-server.registry');

/**
 * The real Node `process`. Under Jest the global `process` is a per-test-file
 * sandbox copy with its own event emitter state, and its 'exit' event never
 * fires. A function created in the host realm (any core-module function's
 * constructor is the host `Function`) resolves `process` to the host object.
 * Outside Jest this is simply the global `process`.
 */
function hostProcess(): NodeJS.Process {
  try {
    const HostFunction = util.inspect.constructor as FunctionConstructor;
    const candidate = new HostFunction('return process')() as NodeJS.Process | undefined;
    if (candidate && typeof candidate.on === 'function' && candidate.pid === process.pid) {
      return candidate;
    }
  } catch {
    // fall through
  }
  return process;
}

/**
 * One registry and one 'exit' listener per OS process, shared by every copy of
 * this module (Jest loads a fresh copy per test file), so listeners don't pile
 * up across test files.
 */
function sharedRegistry(): SharedRegistry {
  const host = hostProcess();
  const slot = host as unknown as Record<symbol, SharedRegistry | undefined>;
  let registry = slot[REGISTRY_KEY];
  if (!registry) {
    const created: SharedRegistry = { pids: new Set(), dirs: new Set() };
    registry = created;
    slot[REGISTRY_KEY] = created;
    const kill = host.kill.bind(host);
    const rmSync = fs.rmSync;
    host.on('exit', () => {
      // Synchronous only: the event loop is gone.
      for (const pid of created.pids) {
        try {
          kill(pid, 'SIGKILL');
        } catch {
          // already gone
        }
      }
      created.pids.clear();
      for (const dir of created.dirs) {
        try {
          rmSync(dir, { recursive: true, force: true });
        } catch {
          // best effort
        }
      }
      created.dirs.clear();
    });
  }
  return registry;
}

const registry = sharedRegistry();

/** Every server started through this module copy (running or not). */
const servers = new Set<RedisServer>();

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * Awaits `promise` while holding a ref'd handle. Spawned processes and their
 * pipes are unref'd (so a leaked server never keeps the test process alive;
 * the 'exit' safety net kills it), hence anything that waits on them must keep
 * the event loop alive itself.
 */
async function keepingAlive<T>(promise: Promise<T>): Promise<T> {
  const handle = setInterval(() => undefined, 60_000);
  try {
    return await promise;
  } finally {
    clearInterval(handle);
  }
}

/** Ports owned by servers of this module (including stopped ones that may be restarted). */
function reservedPorts(): Set<number> {
  return new Set([...servers].map((s) => s.port));
}

function bindEphemeralPort(): Promise<number> {
  return new Promise<number>((resolve, reject) => {
    const probe = net.createServer();
    probe.unref();
    probe.once('error', reject);
    probe.listen({ port: 0, host: HOST, exclusive: true }, () => {
      const { port } = probe.address() as AddressInfo;
      probe.close(() => resolve(port));
    });
  });
}

async function pickFreePort(accept?: (port: number) => boolean | Promise<boolean>): Promise<number> {
  const reserved = reservedPorts();
  for (let i = 0; i < 100; i++) {
    const port = await bindEphemeralPort();
    if (port !== FORBIDDEN_PORT && !reserved.has(port) && (!accept || (await accept(port)))) return port;
  }
  throw new Error('RedisServer: could not find a free port on 127.0.0.1');
}

function encodeCommand(parts: string[]): string {
  let out = `*${parts.length}\r\n`;
  for (const part of parts) out += `$${Buffer.byteLength(part)}\r\n${part}\r\n`;
  return out;
}

type ProbeResult = { ok: true; pid: number } | { ok: false; error: string };

/**
 * One raw-socket round trip: [AUTH], PING, INFO server. Succeeds when the
 * server answered PONG and reported its process_id, so the caller can check
 * the answer came from the process it spawned and not from a stranger.
 */
function probe(
  port: number,
  password: string | undefined,
  timeoutMs: number,
  signal: AbortSignal,
): Promise<ProbeResult> {
  return new Promise<ProbeResult>((resolve) => {
    let buffer = '';
    let settled = false;
    const socket = net.createConnection({ host: HOST, port });
    const onAbort = (): void => finish({ ok: false, error: 'probe aborted' });
    const finish = (result: ProbeResult): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      signal.removeEventListener('abort', onAbort);
      socket.destroy();
      resolve(result);
    };
    const timer = setTimeout(() => finish({ ok: false, error: 'probe timed out' }), timeoutMs);
    if (signal.aborted) return onAbort();
    signal.addEventListener('abort', onAbort, { once: true });
    socket.setNoDelay(true);
    socket.on('connect', () => {
      const commands: string[][] = [];
      if (password !== undefined) commands.push(['AUTH', password]);
      commands.push(['PING'], ['INFO', 'server']);
      socket.write(commands.map(encodeCommand).join(''));
    });
    socket.on('data', (chunk: Buffer) => {
      buffer += chunk.toString('utf8');
      const error = /^-([^\r\n]*)\r\n/m.exec(buffer);
      if (error) return finish({ ok: false, error: error[1] ?? 'error reply' });
      const pid = /process_id:(\d+)\r\n/.exec(buffer);
      if (pid && buffer.includes('+PONG\r\n')) finish({ ok: true, pid: Number(pid[1]) });
    });
    socket.on('error', (err) => finish({ ok: false, error: err.message }));
    socket.on('close', () => finish({ ok: false, error: 'connection closed' }));
  });
}

/** State of one spawned redis-server process. */
interface Run {
  child: ChildProcess;
  /** Set once the process has exited or failed to spawn. */
  done: boolean;
  exitCode: number | null;
  signal: NodeJS.Signals | null;
  spawnError?: NodeJS.ErrnoException;
  /** Resolves after the process exited and its stdio closed. */
  closed: Promise<void>;
  /** Aborted when the process exits or fails to spawn. */
  gone: AbortController;
}

// ---------------------------------------------------------------------------
// RedisServer
// ---------------------------------------------------------------------------

export class RedisServer {
  readonly host = HOST;
  readonly port: number;

  private readonly password: string | undefined;
  private readonly extraArgs: readonly string[];
  private readonly config: string | undefined;
  private dir: string | undefined;
  private current: Run | undefined;
  private readonly output: string[] = [];

  private constructor(port: number, options: RedisServerOptions) {
    this.port = port;
    this.password = options.password === '' ? undefined : options.password;
    this.extraArgs = [...(options.args ?? [])];
    this.config = options.config;
  }

  /** Picks a free port, spawns redis-server, resolves when it answers PING. */
  static async start(options: RedisServerOptions = {}): Promise<RedisServer> {
    let lastError: unknown;
    for (let attempt = 1; attempt <= MAX_START_ATTEMPTS; attempt++) {
      const server = new RedisServer(await pickFreePort(options.acceptPort), options);
      servers.add(server); // reserve the port while launching
      try {
        await server.launch();
        return server;
      } catch (err) {
        servers.delete(server);
        server.removeDir();
        if (!(err instanceof PortInUseError)) throw err;
        lastError = err;
      }
    }
    throw new Error(
      `RedisServer: could not bind a free port after ${MAX_START_ATTEMPTS} attempts: ${(lastError as Error).message}`,
    );
  }

  /** Starts `count` servers concurrently; if any fails, stops the others and rethrows. */
  static async startMany(count: number, options: RedisServerOptions = {}): Promise<RedisServer[]> {
    if (!Number.isInteger(count) || count < 0) {
      throw new RangeError(`RedisServer.startMany: count must be a non-negative integer, got ${count}`);
    }
    const results = await Promise.allSettled(Array.from({ length: count }, () => RedisServer.start(options)));
    const started = results.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []));
    const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed) {
      await Promise.allSettled(started.map((s) => s.stop()));
      throw failed.reason;
    }
    return started;
  }

  /** `redis://127.0.0.1:<port>`, or `redis://:<password>@127.0.0.1:<port>`. */
  get url(): string {
    const auth = this.password !== undefined ? `:${encodeURIComponent(this.password)}@` : '';
    return `redis://${auth}${this.host}:${this.port}`;
  }

  /** PID of the running process; undefined when stopped/killed. */
  get pid(): number | undefined {
    return this.running ? this.current?.child.pid : undefined;
  }

  get running(): boolean {
    return this.current !== undefined && !this.current.done;
  }

  /**
   * SIGTERM (SIGKILL after 5 s), resolves once the process has exited; removes
   * the temp dir. Idempotent.
   */
  async stop(): Promise<void> {
    const run = this.current;
    if (run) {
      if (!run.done) {
        run.child.kill('SIGTERM');
        const escalate = setTimeout(() => {
          if (!run.done) run.child.kill('SIGKILL');
        }, STOP_GRACE_MS);
        try {
          await keepingAlive(run.closed);
        } finally {
          clearTimeout(escalate);
        }
      } else {
        await keepingAlive(run.closed);
      }
    }
    this.removeDir();
  }

  /** SIGKILL (simulated crash), resolves once the process has exited. Keeps the temp dir. */
  async kill(): Promise<void> {
    const run = this.current;
    if (!run) return;
    if (!run.done) run.child.kill('SIGKILL');
    await keepingAlive(run.closed);
  }

  /**
   * Starts the server again on the same port (stopping it first if it is still
   * running); resolves when it answers PING. Data is not preserved.
   */
  async restart(): Promise<void> {
    if (this.running) await this.stop();
    let lastError: unknown;
    for (let attempt = 1; attempt <= MAX_RESTART_ATTEMPTS; attempt++) {
      try {
        await this.launch();
        return;
      } catch (err) {
        if (!(err instanceof PortInUseError)) throw err;
        lastError = err;
        await delay(100 * attempt); // back off: the old socket may still be releasing
      }
    }
    throw lastError;
  }

  /** A new ioredis client for this server (with its password). The caller must quit/disconnect it. */
  client(overrides: RedisOptions = {}): Redis {
    return new Redis({ host: this.host, port: this.port, password: this.password, ...overrides });
  }

  /** The temp dir passed as `--dir` (undefined after stop()). */
  get dataDir(): string | undefined {
    return this.dir;
  }

  /** Path of the config file written from the `config` option (undefined without it, or after stop()). */
  get configPath(): string | undefined {
    return this.config !== undefined && this.dir !== undefined ? path.join(this.dir, 'redis.conf') : undefined;
  }

  /** The last (up to 50) lines the process printed, for diagnostics. */
  get recentOutput(): string {
    return this.output.join('\n');
  }

  // -------------------------------------------------------------------------

  private args(dir: string): string[] {
    const args: string[] = [];
    if (this.config !== undefined) {
      const file = path.join(dir, 'redis.conf');
      if (!fs.existsSync(file)) fs.writeFileSync(file, this.config);
      args.push(file);
    }
    args.push(
      '--port', String(this.port),
      '--bind', HOST,
      '--save', '',
      '--appendonly', 'no',
      '--daemonize', 'no',
      '--protected-mode', 'no',
      '--dir', dir,
    );
    if (this.password !== undefined) args.push('--requirepass', this.password);
    args.push(...this.extraArgs);
    return args;
  }

  private record(line: string): void {
    this.output.push(line);
    if (this.output.length > MAX_OUTPUT_LINES) this.output.splice(0, this.output.length - MAX_OUTPUT_LINES);
  }

  private capture(stream: NodeJS.ReadableStream | null, prefix: string): void {
    if (!stream) return;
    let partial = '';
    stream.on('data', (chunk: Buffer) => {
      partial += chunk.toString('utf8');
      const lines = partial.split(/\r?\n/);
      partial = lines.pop() ?? '';
      for (const line of lines) this.record(prefix + line);
    });
    stream.on('end', () => {
      if (partial) this.record(prefix + partial);
      partial = '';
    });
  }

  private ensureDir(): string {
    if (this.dir === undefined) {
      this.dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nestjs-redis-lock-redis-'));
      registry.dirs.add(this.dir);
    }
    return this.dir;
  }

  private removeDir(): void {
    if (this.dir === undefined) return;
    fs.rmSync(this.dir, { recursive: true, force: true });
    registry.dirs.delete(this.dir);
    this.dir = undefined;
  }

  private spawnProcess(): Run {
    const dir = this.ensureDir();
    this.record(`[harness] spawning redis-server on ${HOST}:${this.port}`);
    // env passed explicitly: under Jest, `process.env` is the test file's copy
    // and spawn would otherwise read the host's (PATH edits would be ignored).
    const child = spawn('redis-server', this.args(dir), {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env },
    });
    let onClosed!: () => void;
    const run: Run = {
      child,
      done: false,
      exitCode: null,
      signal: null,
      closed: new Promise<void>((resolve) => (onClosed = resolve)),
      gone: new AbortController(),
    };
    const pid = child.pid;
    if (pid !== undefined) registry.pids.add(pid);

    this.capture(child.stdout, '');
    this.capture(child.stderr, '[stderr] ');
    // Don't let a forgotten server hold the test process open: unref the
    // process and its pipes; the process 'exit' safety net SIGKILLs it.
    child.unref();
    for (const stream of [child.stdout, child.stderr]) (stream as net.Socket | null)?.unref();

    child.once('error', (err: NodeJS.ErrnoException) => {
      // Spawn failure (ENOENT, EACCES, ...): 'close' follows, 'exit' does not.
      if (pid === undefined) {
        run.spawnError = err;
        run.done = true;
        run.gone.abort();
      }
    });
    child.once('exit', (code, signal) => {
      run.done = true;
      run.exitCode = code;
      run.signal = signal;
      run.gone.abort();
      if (pid !== undefined) registry.pids.delete(pid);
      // If something inherited the pipes, don't wait forever for 'close'.
      const force = setTimeout(() => {
        child.stdout?.destroy();
        child.stderr?.destroy();
      }, 1_000);
      force.unref();
      child.once('close', () => clearTimeout(force));
    });
    child.once('close', () => {
      run.done = true;
      run.gone.abort();
      onClosed();
    });
    return run;
  }

  private failure(reason: string): Error {
    return new Error(
      `RedisServer on ${HOST}:${this.port}: ${reason}\n--- last ${MAX_OUTPUT_LINES} lines of redis-server output ---\n${this.recentOutput}`,
    );
  }

  private exitFailure(run: Run): Error {
    if (run.spawnError) {
      if (run.spawnError.code === 'ENOENT') return new Error(REDIS_SERVER_NOT_FOUND_MESSAGE);
      return this.failure(`could not spawn redis-server: ${run.spawnError.message}`);
    }
    const how = `exited before answering PING (code=${run.exitCode}, signal=${run.signal})`;
    if (/Address already in use|EADDRINUSE/i.test(this.recentOutput)) {
      return new PortInUseError(this.failure(`port already in use; ${how}`).message);
    }
    return this.failure(how);
  }

  /** Spawns redis-server on this.port and waits until it answers PING (10 s deadline). */
  private async launch(): Promise<void> {
    if (this.running) throw new Error(`RedisServer on ${HOST}:${this.port} is already running`);
    const run = this.spawnProcess();
    this.current = run;
    const deadline = Date.now() + READY_TIMEOUT_MS;

    for (;;) {
      if (run.done) {
        await keepingAlive(run.closed); // collect the complete output
        throw this.exitFailure(run);
      }
      const remaining = deadline - Date.now();
      if (remaining <= 0) {
        run.child.kill('SIGKILL');
        await keepingAlive(run.closed);
        throw this.failure(`did not answer PING within ${READY_TIMEOUT_MS} ms`);
      }
      // run.gone aborts the probe as soon as the process dies, so an exit is noticed at once.
      const result = await probe(this.port, this.password, Math.min(PROBE_TIMEOUT_MS, remaining), run.gone.signal);
      if (result.ok) {
        if (result.pid === run.child.pid && !run.done) return;
        if (result.pid !== run.child.pid) {
          // Someone else's server holds the port. Never touch it; drop ours.
          run.child.kill('SIGKILL');
          await keepingAlive(run.closed);
          throw new PortInUseError(
            this.failure(`port is held by another process (pid ${result.pid}), not by the spawned redis-server`)
              .message,
          );
        }
      }
      await keepingAlive(Promise.race([delay(POLL_INTERVAL_MS), run.closed]));
    }
  }
}

/** Stops every server this module started (safety net for afterAll). */
export async function stopAllRedisServers(): Promise<void> {
  const results = await Promise.allSettled([...servers].map((s) => s.stop()));
  const errors = results.flatMap((r) => (r.status === 'rejected' ? [r.reason as unknown] : []));
  if (errors.length === 1) throw errors[0];
  if (errors.length > 1) throw new AggregateError(errors, 'stopAllRedisServers: some servers failed to stop');
}

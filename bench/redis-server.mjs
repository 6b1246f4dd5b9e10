/**
 * A private redis-server for the benchmark: a free port on 127.0.0.1 (never 6379), no
 * persistence, a temp dir, stopped by stop() or, at the latest, SIGKILLed when the process exits.
 * (A trimmed copy of test/support/redis-server.ts, which is TypeScript and meant for Jest.)
 */
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';

const HOST = '127.0.0.1';
const FORBIDDEN_PORT = 6379;
const READY_TIMEOUT_MS = 10_000;

/** Children still running, SIGKILLed synchronously if the process exits without stop(). */
const running = new Set();
process.on('exit', () => {
  for (const child of running) {
    try {
      child.kill('SIGKILL');
    } catch {
      // already gone
    }
  }
});

export function redisServerVersion() {
  const out = spawnSync('redis-server', ['--version'], { encoding: 'utf8' });
  if (out.error) throw new Error('redis-server not found on PATH (Debian/Ubuntu: apt-get install -y redis-server)');
  return /v=(\S+)/.exec(out.stdout)?.[1] ?? out.stdout.trim();
}

function freePort() {
  return new Promise((resolve, reject) => {
    const probe = net.createServer();
    probe.once('error', reject);
    probe.listen({ port: 0, host: HOST, exclusive: true }, () => {
      const { port } = probe.address();
      probe.close(() => resolve(port));
    });
  });
}

/** One PING over a raw socket: true when the server answered PONG. */
function ping(port) {
  return new Promise((resolve) => {
    const socket = net.createConnection({ host: HOST, port });
    const done = (ok) => {
      clearTimeout(timer);
      socket.destroy();
      resolve(ok);
    };
    const timer = setTimeout(() => done(false), 500);
    socket.on('connect', () => socket.write('*1\r\n$4\r\nPING\r\n'));
    socket.on('data', (chunk) => done(chunk.toString().startsWith('+PONG')));
    socket.on('error', () => done(false));
  });
}

export class RedisServer {
  constructor(port, child, dir) {
    this.port = port;
    this.child = child;
    this.dir = dir;
    this.output = [];
    this.exited = new Promise((resolve) => child.once('close', resolve));
    child.once('exit', () => running.delete(child));
    child.stdout.on('data', (c) => this.output.push(String(c)));
    child.stderr.on('data', (c) => this.output.push(String(c)));
  }

  get url() {
    return `redis://${HOST}:${this.port}`;
  }

  static async start() {
    for (let attempt = 1; attempt <= 5; attempt++) {
      let port = await freePort();
      if (port === FORBIDDEN_PORT) continue;
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nestjs-redis-lock-bench-'));
      const child = spawn(
        'redis-server',
        ['--port', String(port), '--bind', HOST, '--save', '', '--appendonly', 'no', '--daemonize', 'no', '--protected-mode', 'no', '--dir', dir],
        { stdio: ['ignore', 'pipe', 'pipe'] },
      );
      running.add(child);
      const server = new RedisServer(port, child, dir);
      let spawnError;
      child.once('error', (error) => (spawnError = error));
      const deadline = Date.now() + READY_TIMEOUT_MS;
      let exited = false;
      server.exited.then(() => (exited = true));
      while (!exited && !spawnError && Date.now() < deadline) {
        if (await ping(port)) return server;
        await delay(20);
      }
      await server.stop();
      if (spawnError?.code === 'ENOENT') throw new Error('redis-server not found on PATH (Debian/Ubuntu: apt-get install -y redis-server)');
      const output = server.output.join('');
      if (!/Address already in use/i.test(output)) throw new Error(`redis-server did not start:\n${output}`);
    }
    throw new Error('redis-server: could not bind a free port');
  }

  async stop() {
    if (this.child.exitCode === null && this.child.signalCode === null) {
      this.child.kill('SIGTERM');
      const escalate = setTimeout(() => this.child.kill('SIGKILL'), 5_000);
      await this.exited;
      clearTimeout(escalate);
    }
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}

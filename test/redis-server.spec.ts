import fs from 'node:fs';
import net, { type AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { Redis, type RedisOptions } from 'ioredis';
import {
  REDIS_SERVER_NOT_FOUND_MESSAGE,
  RedisServer,
  stopAllRedisServers,
} from './support/redis-server.js';

/** Client options for connections that are expected to fail: no retries, no hanging. */
const FAIL_FAST: RedisOptions = {
  lazyConnect: true,
  maxRetriesPerRequest: 1,
  retryStrategy: () => null,
  enableOfflineQueue: false,
  connectTimeout: 2_000,
};

const clients = new Set<Redis>();
function track(client: Redis): Redis {
  clients.add(client);
  return client;
}

async function closeClient(client: Redis): Promise<void> {
  clients.delete(client);
  if (client.status === 'ready') {
    await client.quit().catch(() => client.disconnect());
  } else if (client.status !== 'end') {
    client.disconnect();
  }
  // Note: ioredis' disconnect() on a client whose socket is already closed ('end', or
  // 'reconnecting' after its server died) arms a 2 s timer that nothing clears, which Jest
  // reports as an open handle. So tests quit their clients *before* stopping servers.
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    expect((err as NodeJS.ErrnoException).code).toBe('ESRCH');
    return false;
  }
}

async function serverPid(client: Redis): Promise<number> {
  const info = await client.info('server');
  const match = /process_id:(\d+)/.exec(info);
  if (!match) throw new Error(`no process_id in INFO: ${info}`);
  return Number(match[1]);
}

/** Opens and closes a raw TCP connection; rejects with the socket error. */
function tcpConnect(port: number): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const socket = net.createConnection({ host: '127.0.0.1', port });
    socket.once('connect', () => {
      socket.destroy();
      resolve();
    });
    socket.once('error', (err) => {
      socket.destroy();
      reject(err);
    });
  });
}

/** Resolves when `emitter` emits `event`, rejects after `ms`. */
function eventWithin(emitter: Redis, event: string, ms: number): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => {
      emitter.off(event, onEvent);
      reject(new Error(`'${event}' not emitted within ${ms} ms`));
    }, ms);
    const onEvent = (): void => {
      clearTimeout(timer);
      resolve();
    };
    emitter.once(event, onEvent);
  });
}

/** Quit clients while their servers are still up (see closeClient). */
async function closeAllClients(): Promise<void> {
  await Promise.all([...clients].map(closeClient));
}

afterEach(async () => {
  await closeAllClients();
  await stopAllRedisServers();
});

afterAll(async () => {
  await stopAllRedisServers();
});

describe('RedisServer', () => {
  it('starts on a free port (never 6379) and answers PING through client()', async () => {
    const server = await RedisServer.start();

    expect(server.port).not.toBe(6379);
    expect(server.port).toBeGreaterThan(0);
    expect(server.host).toBe('127.0.0.1');
    expect(server.url).toBe(`redis://127.0.0.1:${server.port}`);
    expect(server.running).toBe(true);
    expect(typeof server.pid).toBe('number');
    expect(isAlive(server.pid!)).toBe(true);

    const client = track(server.client());
    await expect(client.ping()).resolves.toBe('PONG');
    // The answer comes from the process the harness spawned.
    await expect(serverPid(client)).resolves.toBe(server.pid);
    // Persistence is off.
    await expect(client.config('GET', 'save')).resolves.toEqual(['save', '']);
    await expect(client.config('GET', 'appendonly')).resolves.toEqual(['appendonly', 'no']);
    await expect(client.config('GET', 'dir')).resolves.toEqual(['dir', fs.realpathSync(server.dataDir!)]);
  });

  it('stop() terminates the process, refuses connections, removes the temp dir, and is idempotent', async () => {
    const server = await RedisServer.start();
    const pid = server.pid!;
    const dir = server.dataDir!;
    expect(fs.existsSync(dir)).toBe(true);

    await server.stop();

    expect(server.running).toBe(false);
    expect(server.pid).toBeUndefined();
    expect(isAlive(pid)).toBe(false);
    expect(fs.existsSync(dir)).toBe(false);
    expect(server.dataDir).toBeUndefined();

    // Raw TCP: nothing listens on the port any more.
    await expect(tcpConnect(server.port)).rejects.toMatchObject({ code: 'ECONNREFUSED' });
    // ioredis: connect() fails (ioredis reports "Connection is closed." and emits the ECONNREFUSED as 'error').
    const client = track(server.client(FAIL_FAST));
    const errors: NodeJS.ErrnoException[] = [];
    client.on('error', (err: NodeJS.ErrnoException) => errors.push(err));
    await expect(client.connect()).rejects.toThrow();
    expect(errors.map((e) => e.code)).toContain('ECONNREFUSED');

    await expect(server.stop()).resolves.toBeUndefined();
    await expect(Promise.all([server.stop(), server.stop()])).resolves.toBeDefined();
  });

  it('restart() brings the server back on the same port, as a new process with empty data', async () => {
    const server = await RedisServer.start();
    const port = server.port;
    const firstPid = server.pid!;

    const before = track(server.client());
    await before.set('k', 'v');
    await closeClient(before);

    await server.stop();
    await server.restart();

    expect(server.port).toBe(port);
    expect(server.running).toBe(true);
    expect(server.pid).not.toBe(firstPid);
    expect(isAlive(server.pid!)).toBe(true);

    const after = track(server.client());
    await expect(after.ping()).resolves.toBe('PONG');
    await expect(serverPid(after)).resolves.toBe(server.pid);
    await expect(after.get('k')).resolves.toBeNull();

    // restart() on a running server stops it first.
    const secondPid = server.pid!;
    await closeClient(after);
    await server.restart();
    expect(server.pid).not.toBe(secondPid);
    expect(isAlive(secondPid)).toBe(false);
  });

  it('kill() simulates a crash: connected clients lose the connection; restart() recovers', async () => {
    const server = await RedisServer.start();
    const pid = server.pid!;

    const client = track(server.client({ retryStrategy: () => null, maxRetriesPerRequest: 1 }));
    await expect(client.ping()).resolves.toBe('PONG');
    const closed = eventWithin(client, 'end', 5_000);

    await server.kill();

    expect(server.running).toBe(false);
    expect(server.pid).toBeUndefined();
    expect(isAlive(pid)).toBe(false);
    await closed;
    expect(client.status).toBe('end');

    await server.restart();
    const fresh = track(server.client());
    await expect(fresh.ping()).resolves.toBe('PONG');
  });

  it('startMany(3) gives three distinct servers on distinct ports that all answer', async () => {
    const many = await RedisServer.startMany(3);

    expect(many).toHaveLength(3);
    const ports = many.map((s) => s.port);
    expect(new Set(ports).size).toBe(3);
    expect(ports).not.toContain(6379);
    expect(new Set(many.map((s) => s.pid)).size).toBe(3);

    const pongs = await Promise.all(
      many.map(async (s) => {
        const client = track(s.client());
        return [await client.ping(), await serverPid(client)] as const;
      }),
    );
    expect(pongs).toEqual(many.map((s) => ['PONG', s.pid]));

    await closeAllClients();
    await Promise.all(many.map((s) => s.stop()));
    expect(many.every((s) => !s.running)).toBe(true);
  });

  it('password option requires AUTH: unauthenticated commands fail with NOAUTH, authenticated ones work', async () => {
    const server = await RedisServer.start({ password: 's3cret/pw' });

    expect(server.url).toBe(`redis://:s3cret%2Fpw@127.0.0.1:${server.port}`);

    // RESP2 without a password: the connection is accepted, every command fails with NOAUTH.
    // (enableReadyCheck off: ioredis' ready check (INFO) would itself hit NOAUTH and drop the connection.)
    const anonymous = track(
      server.client({ ...FAIL_FAST, password: undefined, protocol: 2, enableReadyCheck: false }),
    );
    await anonymous.connect();
    await expect(anonymous.ping()).rejects.toThrow(/NOAUTH/);
    await expect(anonymous.set('k', 'v')).rejects.toThrow(/NOAUTH/);

    // ioredis 6 defaults to RESP3: its unauthenticated HELLO 3 is refused with NOAUTH during the handshake.
    const anonymous3 = track(server.client({ ...FAIL_FAST, password: undefined }));
    const errors: Error[] = [];
    anonymous3.on('error', (err: Error) => errors.push(err));
    await expect(anonymous3.connect()).rejects.toThrow();
    expect(errors.map((e) => e.message).join('\n')).toMatch(/NOAUTH/);

    const authed = track(server.client());
    await expect(authed.ping()).resolves.toBe('PONG');

    const fromUrl = track(new Redis(server.url));
    await expect(fromUrl.ping()).resolves.toBe('PONG');
  });

  it('passes extra CLI args through to redis-server', async () => {
    const server = await RedisServer.start({ args: ['--maxmemory', '10mb', '--maxmemory-policy', 'noeviction'] });
    const client = track(server.client());

    await expect(client.config('GET', 'maxmemory')).resolves.toEqual(['maxmemory', String(10 * 1024 * 1024)]);
    await expect(client.config('GET', 'maxmemory-policy')).resolves.toEqual(['maxmemory-policy', 'noeviction']);
  });

  it('rejects with the captured redis-server output when the server cannot start', async () => {
    await expect(RedisServer.start({ args: ['--no-such-directive', 'x'] })).rejects.toThrow(
      /exited before answering PING[\s\S]*no-such-directive/,
    );
  });

  it('restart() reports a port taken by a foreign process, without touching it', async () => {
    const server = await RedisServer.start();
    await server.stop();

    // A foreign listener (not a redis-server started by the harness) grabs the port.
    const foreign = net.createServer((socket) => socket.destroy());
    await new Promise<void>((resolve, reject) => {
      foreign.once('error', reject);
      foreign.listen({ port: server.port, host: '127.0.0.1' }, resolve);
    });
    try {
      expect((foreign.address() as AddressInfo).port).toBe(server.port);
      await expect(server.restart()).rejects.toThrow(/already in use/);
      expect(server.running).toBe(false);
      expect(foreign.listening).toBe(true);
    } finally {
      await new Promise<void>((resolve) => foreign.close(() => resolve()));
    }

    await server.restart();
    const client = track(server.client());
    await expect(client.ping()).resolves.toBe('PONG');
  });

  it('throws an install hint when redis-server is not on PATH', async () => {
    const emptyDir = fs.mkdtempSync(path.join(os.tmpdir(), 'nestjs-redis-lock-nopath-'));
    const savedPath = process.env.PATH;
    process.env.PATH = emptyDir;
    try {
      await expect(RedisServer.start()).rejects.toThrow(REDIS_SERVER_NOT_FOUND_MESSAGE);
    } finally {
      process.env.PATH = savedPath;
      fs.rmSync(emptyDir, { recursive: true, force: true });
    }
    expect(REDIS_SERVER_NOT_FOUND_MESSAGE).toBe(
      'redis-server not found on PATH. Install it: apt-get install -y redis-server redis-tools (Debian/Ubuntu) or brew install redis (macOS)',
    );
  });

  it('stopAllRedisServers() stops every server started by the harness', async () => {
    const a = await RedisServer.start();
    const b = await RedisServer.start();
    const pids = [a.pid!, b.pid!];

    await stopAllRedisServers();

    expect(a.running).toBe(false);
    expect(b.running).toBe(false);
    expect(pids.map(isAlive)).toEqual([false, false]);
  });
});

import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import net, { type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LockUnavailableError } from '../lib/index.js';
import { RedisServer, stopAllRedisServers } from './support/redis-server.js';
import { eventually, startLockApp } from './support/lock-app.js';

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

describe('TLS and ACL users pass through to ioredis', () => {
  let dir: string;
  let server: RedisServer;
  let tlsPort: number;
  let ca: Buffer;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'lock-tls-'));
    execFileSync('openssl', [
      'req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1', '-subj', '/CN=127.0.0.1',
      '-addext', 'subjectAltName=IP:127.0.0.1', '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem'),
    ], { stdio: 'ignore' });
    ca = readFileSync(join(dir, 'cert.pem'));
    tlsPort = await freePort();
    server = await RedisServer.start({
      args: [
        '--tls-port', String(tlsPort),
        '--tls-cert-file', join(dir, 'cert.pem'),
        '--tls-key-file', join(dir, 'key.pem'),
        '--tls-ca-cert-file', join(dir, 'cert.pem'),
        '--tls-auth-clients', 'no',
      ],
      // An ACL user limited to the lock prefix and its release channel.
      config: 'user locker on >s3cret ~lock:* &lock:* +@all\n',
    });
  });
  afterAll(async () => {
    await stopAllRedisServers();
    rmSync(dir, { recursive: true, force: true });
  });

  const tlsOptions = (password: string) => ({
    host: '127.0.0.1',
    port: tlsPort,
    username: 'locker',
    password,
    tls: { ca },
    maxRetriesPerRequest: 1,
  });

  it('locks, waits and releases over TLS as an ACL user restricted to the lock prefix', async () => {
    const appA = await startLockApp({ redis: tlsOptions('s3cret'), wait: 0 });
    const appB = await startLockApp({ redis: tlsOptions('s3cret'), wait: 0, pollInterval: 600_000 });
    const held = await appA.locks.acquire('tls:1');
    expect(await appB.locks.isLocked('tls:1')).toBe(true);
    // The waiter's subscriber connection is a duplicate of the client: it must carry TLS and the user too.
    const waiting = appB.locks.acquire('tls:1', { wait: 20_000 });
    await eventually(() => appB.locks.leaseStats.waiters === 1, 10_000, 'the waiter');
    await held.release();
    await (await waiting).release();
    await appA.close();
    await appB.close();
  });

  it('fails with LockUnavailableError for a wrong password, without hanging', async () => {
    const app = await startLockApp({ redis: tlsOptions('wrong'), wait: 0 });
    await expect(app.locks.acquire('tls:2', { wait: 500 })).rejects.toBeInstanceOf(LockUnavailableError);
    await app.close();
  });
});

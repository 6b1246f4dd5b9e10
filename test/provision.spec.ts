/**
 * `npm test` sets itself up: the decision of test/support/provision.ts (jest globalSetup), and a
 * real run with no redis-server, redis-cli or openssl on PATH.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {
  linkDirFor,
  planProvisioning,
  probeSystem,
  provisionTestTools,
  which,
  type SystemFacts,
  type Tool,
} from './support/provision.js';
import { RedisServer, stopAllRedisServers } from './support/redis-server.js';

const ALL: Record<Tool, string> = { 'redis-server': '/x/redis-server', 'redis-cli': '/x/redis-cli', openssl: '/x/openssl' };
const NONE: Record<Tool, string | undefined> = { 'redis-server': undefined, 'redis-cli': undefined, openssl: undefined };

function facts(overrides: Partial<SystemFacts>): SystemFacts {
  return { platform: 'linux', env: {}, found: { ...NONE }, badEnv: [], aptGet: false, brew: false, root: false, passwordlessSudo: false, ...overrides };
}

describe('provisioning: what to do', () => {
  it('everything found: ready, nothing to install', () => {
    expect(planProvisioning(facts({ found: { ...ALL }, aptGet: true, root: true }))).toEqual({ kind: 'ready', tools: ALL });
  });

  it('Debian as root: apt-get update + install of exactly the missing packages, then stops the 6379 service', () => {
    const plan = planProvisioning(facts({ found: { ...NONE, openssl: '/usr/bin/openssl' }, aptGet: true, root: true }));
    expect(plan).toEqual({
      kind: 'install',
      missing: ['redis-server', 'redis-cli'],
      explain: 'installing redis-server redis-tools with apt-get (running as root)',
      commands: [
        ['apt-get', 'update', '-qq'],
        ['env', 'DEBIAN_FRONTEND=noninteractive', 'apt-get', 'install', '-y', '-qq', 'redis-server', 'redis-tools'],
      ],
      then: [
        ['service', 'redis-server', 'stop'],
        ['systemctl', 'stop', 'redis-server'],
      ],
    });
  });

  it('Debian with passwordless sudo: the same through sudo -n; only openssl missing: no service to stop', () => {
    const plan = planProvisioning(facts({ found: { ...ALL, openssl: undefined }, aptGet: true, passwordlessSudo: true }));
    expect(plan).toMatchObject({
      kind: 'install',
      missing: ['openssl'],
      commands: [
        ['sudo', '-n', 'apt-get', 'update', '-qq'],
        ['sudo', '-n', 'env', 'DEBIAN_FRONTEND=noninteractive', 'apt-get', 'install', '-y', '-qq', 'openssl'],
      ],
      then: undefined,
    });
  });

  it('Debian without root or sudo: fails with the exact command', () => {
    const plan = planProvisioning(facts({ aptGet: true }));
    expect(plan.kind).toBe('fail');
    expect(plan.kind === 'fail' && plan.message).toContain(
      'installing needs root or passwordless sudo. Run: sudo apt-get update && sudo apt-get install -y redis-server redis-tools openssl',
    );
  });

  it('macOS with Homebrew: brew install redis', () => {
    const plan = planProvisioning(facts({ platform: 'darwin', brew: true, found: { ...NONE, openssl: '/usr/bin/openssl' } }));
    expect(plan).toMatchObject({ kind: 'install', commands: [['brew', 'install', 'redis']] });
  });

  it('macOS without Homebrew: fails naming brew install redis', () => {
    const plan = planProvisioning(facts({ platform: 'darwin', found: { ...NONE, openssl: '/usr/bin/openssl' } }));
    expect(plan.kind === 'fail' && plan.message).toContain('Homebrew (brew) was not found. Run: brew install redis');
  });

  it('REDIS_PROVISION=never: never installs, even as root', () => {
    const plan = planProvisioning(facts({ aptGet: true, root: true, env: { REDIS_PROVISION: 'never' } }));
    expect(plan.kind === 'fail' && plan.message).toMatch(/REDIS_PROVISION=never, so not installing\). Run: sudo apt-get/);
  });

  it('a REDIS_SERVER that is not an executable fails, naming it', () => {
    const probed = probeSystem({ PATH: '', REDIS_SERVER: '/nonexistent/redis-server' });
    expect(probed.badEnv).toEqual(['REDIS_SERVER=/nonexistent/redis-server is not an executable file']);
    expect(planProvisioning(probed)).toMatchObject({ kind: 'fail', message: expect.stringContaining('REDIS_SERVER=/nonexistent/redis-server') });
  });
});

describe('provisioning: a real run with none of the tools on PATH', () => {
  const realServer = which('redis-server', process.env.PATH)!;
  const realOpenssl = which('openssl', process.env.PATH)!;
  let emptyBin: string;
  const originalPath = process.env.PATH;

  beforeAll(() => {
    emptyBin = fs.mkdtempSync(path.join(os.tmpdir(), 'nestjs-redis-lock-empty-bin-'));
  });
  afterAll(async () => {
    process.env.PATH = originalPath;
    await stopAllRedisServers();
    fs.rmSync(emptyBin, { recursive: true, force: true });
  });

  it('the machine running the tests has the tools (else globalSetup would have installed them or failed)', () => {
    expect(realServer).toBeDefined();
    expect(realOpenssl).toBeDefined();
  });

  it('with REDIS_SERVER and OPENSSL given and a PATH without them, links them in and a real redis-server starts', async () => {
    const env = { PATH: emptyBin, REDIS_SERVER: realServer, OPENSSL: realOpenssl };
    expect(which('redis-server', env.PATH)).toBeUndefined();
    const lines: string[] = [];
    const result = provisionTestTools({ env, log: (line) => lines.push(line) });
    expect(result.installed).toEqual([]);
    expect(result.tools['redis-server']).toBe(realServer);
    // redis-cli is found next to REDIS_SERVER.
    expect(result.tools['redis-cli']).toBe(path.join(path.dirname(realServer), 'redis-cli'));
    const linkDir = result.path!.split(path.delimiter)[0]!;
    expect(result.path).toBe(`${linkDir}${path.delimiter}${emptyBin}`);
    expect(fs.readlinkSync(path.join(linkDir, 'redis-server'))).toBe(realServer);
    expect(lines.join('\n')).toContain(`redis-server=${realServer}`);

    // The harness spawns 'redis-server' by name, through this PATH only.
    process.env.PATH = result.path;
    const server = await RedisServer.start();
    const client = server.client();
    expect(await client.ping()).toBe('PONG');
    await client.quit();
    await server.stop();
    process.env.PATH = originalPath;
    fs.rmSync(linkDir, { recursive: true, force: true });
  });

  it('with nothing given and no package manager on PATH, fails with the command to run', () => {
    expect(() => provisionTestTools({ env: { PATH: emptyBin }, log: () => undefined })).toThrow(
      /The tests need redis-server, redis-cli, openssl, which are not installed, and .*Run: sudo apt-get update && sudo apt-get install -y redis-server redis-tools openssl/,
    );
  });

  it('links nothing when PATH already finds every tool', () => {
    const tools = { 'redis-server': realServer, 'redis-cli': which('redis-cli', originalPath)!, openssl: realOpenssl };
    expect(linkDirFor(tools, originalPath)).toBeUndefined();
  });
});

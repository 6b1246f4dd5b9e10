/**
 * Holder identity, inspection and the CLI (issue 16), on real redis-server processes: one Redis,
 * Redlock over three masters, and the memory store. The Cluster is in inspection.cluster.spec.ts.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { fileURLToPath } from 'node:url';
import type { Redis } from 'ioredis';
import { LockLostError, type LockEvent, type LockInfo } from '../lib/index.js';
import { parseReleaseMessage } from '../lib/stores/redis.store.js';
import { parseHolderToken } from '../lib/instance/holder-token.js';
import { globMatcher, heldUserKeyOf } from '../lib/inspection/key-layout.js';
import { lockKeyOf } from '../lib/stores/redis.store.js';
import { LIBRARY_VERSION } from '../lib/version.js';
import { ownerOf } from './support/lock-value.js';
import { RedisServer, stopAllRedisServers } from './support/redis-server.js';
import { aborted, eventually, startLockApp, type LockApp } from './support/lock-app.js';
import { runCli } from './support/cli.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const fixture = (name: string): string => fileURLToPath(new URL(`./fixtures/${name}`, import.meta.url));

/** Every token string that must never be shown: the whole token and its random part. */
function expectNoToken(text: string, tokens: readonly string[]): void {
  for (const token of tokens) {
    expect(text.includes(token)).toBe(false);
    expect(text.includes(token.slice(-32))).toBe(false);
  }
}

const ids = (info: LockInfo) => info.holders.map((holder) => holder.instance?.id).sort();

describe('tokens and key layout', () => {
  it('carry the instance id and the acquire time; release messages of such tokens parse', () => {
    const token = `${'a'.repeat(16)}${(1_700_000_000_000).toString(16).padStart(12, '0')}${'b'.repeat(32)}`;
    expect(parseHolderToken(token)).toEqual({ instanceId: 'a'.repeat(16), since: 1_700_000_000_000 });
    expect(parseHolderToken('c'.repeat(32))).toBeUndefined();
    expect(parseReleaseMessage(`r${token}order:42`)).toEqual({ key: 'order:42', releasedBy: token });
    expect(parseReleaseMessage(`g${token}17:order:{x}`)).toEqual({ key: 'order:{x}', releasedBy: token, grantedTo: { token, fence: 17 } });
  });

  it('reads the user key back from every layout, and never from fences, markers or records', () => {
    for (const key of ['order:42', 'a}:permits', '}odd%7D', 'x{y}', '}']) {
      const lock = lockKeyOf('lock:', key);
      expect(heldUserKeyOf('lock:', lock)).toEqual({ key, part: 'lock' });
      expect(heldUserKeyOf('lock:', `${lock}:permits`)).toEqual({ key, part: 'permits' });
      expect(heldUserKeyOf('lock:', `${lock}:readers`)).toEqual({ key, part: 'readers' });
      for (const other of [':fence', ':wanted', ':queue', ':permits:holds', ':writer-waiting']) {
        expect(heldUserKeyOf('lock:', `${lock}${other}`)).toBeUndefined();
      }
    }
    expect(heldUserKeyOf('lock:', 'lock:instance:0123456789abcdef')).toBeUndefined();
    expect(heldUserKeyOf('lock:', 'other:{k}')).toBeUndefined();
    expect(globMatcher('order:*')('order:42')).toBe(true);
    expect(globMatcher('order:?')('order:42')).toBe(false);
    expect(globMatcher('[ab]\\*')('b*')).toBe(true);
  });

  it('records the version of package.json', () => {
    expect(LIBRARY_VERSION).toBe(JSON.parse(readFileSync(`${ROOT}/package.json`, 'utf8')).version);
  });
});

describe('inspection on one Redis', () => {
  let server: RedisServer;
  let redis: Redis;
  let appA: LockApp;
  let appB: LockApp;
  const events: LockEvent[] = [];
  const tokens: string[] = [];
  const children = new Set<ChildProcess>();
  const cli = (...args: string[]) => runCli(['--redis', server.url, ...args]);

  beforeAll(async () => {
    server = await RedisServer.start();
    redis = server.client();
    appA = await startLockApp({ redis: server.url, appName: 'alpha', onEvent: (event) => events.push(event) });
    appB = await startLockApp({ redis: server.url, appName: 'beta', onEvent: (event) => events.push(event) });
  });
  afterAll(async () => {
    for (const child of children) child.kill('SIGKILL');
    await appA?.close();
    await appB?.close();
    await redis?.quit();
    await stopAllRedisServers();
  });

  it('names the holder instance of another app, since when, its lease and fence; no token anywhere', async () => {
    const before = Date.now();
    const lock = await appA.locks.acquire('ins:order', { ttl: 20_000 });
    tokens.push(lock.token);
    expect(lock.token.startsWith(appA.locks.instanceId)).toBe(true);
    const info = await appB.locks.inspect('ins:order');
    expect(info).toMatchObject({ key: 'ins:order', held: true, mode: 'exclusive', fence: lock.fence, queueLength: 0, waiting: false });
    expect(info.holders).toHaveLength(1);
    const [holder] = info.holders;
    expect(holder.instance).toEqual({
      id: appA.locks.instanceId,
      host: hostname(),
      pid: process.pid,
      app: 'alpha',
      version: LIBRARY_VERSION,
      startedAt: expect.any(Number),
      alive: true,
    });
    expect(holder.since).toBeGreaterThanOrEqual(before);
    expect(holder.since).toBeLessThanOrEqual(Date.now());
    expect(holder.remainingMs).toBeGreaterThan(0);
    expect(holder.remainingMs).toBeLessThanOrEqual(20_000);
    expectNoToken(JSON.stringify(info), tokens);
    expect(appA.locks.instanceId).not.toBe(appB.locks.instanceId);
    await lock.release();
    // Fences come from a shared counter: a free key has none of its own.
    expect(await appB.locks.inspect('ins:order')).toMatchObject({ held: false, holders: [], fence: 0 });
  });

  it('shows someone waiting, and fair waiters in the queue', async () => {
    const lock = await appA.locks.acquire('ins:wait');
    const plain = appB.locks.acquire('ins:wait', { wait: 30_000 });
    await eventually(async () => (await appA.locks.inspect('ins:wait')).waiting, 10_000, 'the waiter to show');
    await lock.release();
    const second = await plain;
    const fair = appA.locks.acquire('ins:wait', { wait: 30_000, fair: true });
    await eventually(async () => (await appA.locks.inspect('ins:wait')).queueLength === 1, 10_000, 'the fair waiter to queue');
    expect(appA.locks.activity.waiting).toBe(1);
    await second.release();
    await (await fair).release();
    expect((await appB.locks.inspect('ins:wait')).queueLength).toBe(0);
  });

  it('counts waiters queued for a permit', async () => {
    const permit = await appA.locks.acquire('ins:permit-wait', { permits: 1 });
    const waiting = appB.locks.acquire('ins:permit-wait', { permits: 1, wait: 30_000 });
    await eventually(async () => (await appA.locks.inspect('ins:permit-wait')).queueLength === 1, 10_000, 'the permit waiter to show');
    expect(await appB.locks.inspect('ins:permit-wait')).toMatchObject({ mode: 'permits', waiting: true, queueLength: 1 });
    await permit.release();
    await (await waiting).release();
    expect((await appA.locks.inspect('ins:permit-wait')).queueLength).toBe(0);
  });

  it('lists every permit holder with its instance and fence, and every reader; a waiting writer shows', async () => {
    const a1 = await appA.locks.acquire('ins:sem', { permits: 3 });
    const a2 = await appA.locks.acquire('ins:sem', { permits: 3 });
    const b1 = await appB.locks.acquire('ins:sem', { permits: 3 });
    tokens.push(a1.token, a2.token, b1.token);
    const sem = await appB.locks.inspect('ins:sem');
    expect(sem).toMatchObject({ held: true, mode: 'permits', permits: 3 });
    expect(ids(sem)).toEqual([appA.locks.instanceId, appA.locks.instanceId, appB.locks.instanceId].sort());
    expect(sem.holders.map((holder) => holder.fence).sort()).toEqual([a1.fence, a2.fence, b1.fence].sort());
    expectNoToken(JSON.stringify(sem), tokens);
    await Promise.all([a1.release(), a2.release(), b1.release()]);

    const ra = await appA.locks.acquire('ins:doc', { mode: 'read' });
    const rb = await appB.locks.acquire('ins:doc', { mode: 'read' });
    const readers = await appA.locks.inspect('ins:doc');
    expect(readers).toMatchObject({ held: true, mode: 'read' });
    expect(ids(readers)).toEqual([appA.locks.instanceId, appB.locks.instanceId].sort());
    expect(readers.writerWaiting).toBeUndefined();
    const writer = appB.locks.acquire('ins:doc', { wait: 30_000 });
    await eventually(async () => (await appA.locks.inspect('ins:doc')).writerWaiting === true, 10_000, 'the writer to wait');
    await Promise.all([ra.release(), rb.release()]);
    await (await writer).release();
  });

  it('lists held keys only, by glob, bounded by limit, as an array or with for await', async () => {
    const held = await Promise.all(['ins:l:1', 'ins:l:2', 'ins:l:3', '}ins:l:odd'].map((key) => appA.locks.acquire(key)));
    const sem = await appB.locks.acquire('ins:l:sem', { permits: 2 });
    const gone = await appA.locks.acquire('ins:l:released');
    await gone.release(); // its fence key stays, but it is not held
    const all = await appB.locks.list({ match: 'ins:l:*' });
    expect(all.map((info) => info.key).sort()).toEqual(['ins:l:1', 'ins:l:2', 'ins:l:3', 'ins:l:sem']);
    expect(all.every((info) => info.held)).toBe(true);
    const odd = await appB.locks.list({ match: '}*' });
    expect(odd.map((info) => info.key)).toEqual(['}ins:l:odd']);
    const iterated: string[] = [];
    for await (const info of appB.locks.list({ match: 'ins:l:?' })) iterated.push(info.key);
    expect(iterated.sort()).toEqual(['ins:l:1', 'ins:l:2', 'ins:l:3']);
    expect(await appB.locks.list({ match: 'ins:l:*', limit: 2 })).toHaveLength(2);
    expect(appA.locks.activity.held).toBeGreaterThanOrEqual(4);
    await Promise.all([...held, sem].map((lock) => lock.release()));
    expect(await appB.locks.list({ match: 'ins:l:*' })).toEqual([]);
  });

  it('names a holder in another process; its record disappears on its own once that process is killed', async () => {
    const child = spawnHolder({ redisUrl: server.url, key: 'ins:child', appName: 'child', ttl: 1_000 });
    const hello = await child.holding;
    const info = await appA.locks.inspect('ins:child');
    expect(info.holders[0].instance).toMatchObject({ id: hello.instanceId, pid: child.proc.pid, app: 'child', alive: true });
    expect(await redis.exists(`lock:instance:${hello.instanceId}`)).toBe(1);
    child.proc.kill('SIGKILL');
    await eventually(async () => (await redis.exists(`lock:instance:${hello.instanceId}`)) === 0, 15_000, 'the record to expire');
    await eventually(async () => !(await appA.locks.inspect('ins:child')).held, 15_000, 'the lease to run out');
  });

  it('removes its record on shutdown, and keeps it alive while running', async () => {
    const app = await startLockApp({ redis: server.url, ttl: 1_000 });
    const id = app.locks.instanceId;
    // Written right after boot, without holding it up.
    await eventually(async () => (await redis.exists(`lock:instance:${id}`)) === 1, 10_000, 'the record to be written');
    expect(JSON.parse((await redis.get(`lock:instance:${id}`)) as string)).toMatchObject({ id, pid: process.pid, version: LIBRARY_VERSION });
    // Renewed: still there after several of its 1 s lifetimes.
    const pttls: number[] = [];
    for (let i = 0; i < 5; i++) {
      await new Promise((resolve) => setTimeout(resolve, 500));
      pttls.push(await redis.pttl(`lock:instance:${id}`));
    }
    expect(pttls.every((pttl) => pttl > 0)).toBe(true);
    await app.close();
    expect(await redis.exists(`lock:instance:${id}`)).toBe(0);
  });

  it('CLI list / inspect / watch print the documented table, lines and JSON', async () => {
    const lock = await appA.locks.acquire('cli:order:1');
    const sem = await appB.locks.acquire('cli:sem', { permits: 4 });
    tokens.push(lock.token, sem.token);
    const alpha = `alpha@${hostname()}:${process.pid}`;

    const list = await cli('list', 'cli:*');
    expect(list.code).toBe(0);
    const lines = list.stdout.trim().split('\n');
    expect(lines[0].split(/\s+/)).toEqual(['KEY', 'MODE', 'HOLDER', 'AGE', 'REMAINING', 'FENCE', 'WAITERS']);
    expect(lines).toHaveLength(3);
    expect(lines[1]).toMatch(new RegExp(`^cli:order:1\\s+exclusive\\s+${escape(alpha)}\\s+\\S+\\s+\\S+\\s+${lock.fence}\\s+-$`));
    expect(lines[2]).toMatch(/^cli:sem\s+permits 1\/4\s+beta@/);

    const json = await cli('list', 'cli:*', '--json');
    const parsed = JSON.parse(json.stdout) as LockInfo[];
    expect(parsed.map((info) => info.key).sort()).toEqual(['cli:order:1', 'cli:sem']);
    expect(parsed.find((info) => info.key === 'cli:order:1')?.holders[0].instance?.id).toBe(appA.locks.instanceId);

    const inspect = await cli('inspect', 'cli:order:1');
    expect(inspect.code).toBe(0);
    expect(inspect.stdout).toContain('cli:order:1: held (exclusive)');
    expect(inspect.stdout).toContain(`holder 1: ${alpha}, instance ${appA.locks.instanceId}`);
    expect(inspect.stdout).toContain(`fence counter: ${lock.fence}`);
    const inspectJson = JSON.parse((await cli('inspect', 'cli:order:1', '--json')).stdout) as LockInfo;
    expect(inspectJson).toMatchObject({ key: 'cli:order:1', held: true, mode: 'exclusive', fence: lock.fence });
    expect((await cli('inspect', 'cli:none')).stdout).toContain('cli:none: not held');

    const watch = await cli('watch', 'cli:order:*', '--count', '2', '--interval', '50');
    expect(watch.code).toBe(0);
    const watched = watch.stdout.trim().split('\n');
    expect(watched).toHaveLength(2); // not a TTY: one plain line per lock per refresh
    for (const line of watched) {
      expect(line).toMatch(new RegExp(`^\\S+Z key=cli:order:1 mode=exclusive holder=${escape(alpha)} age=\\S+ remaining=\\S+ fence=${lock.fence} waiters=-$`));
    }
    const watchJson = (await cli('watch', 'cli:*', '--count', '2', '--interval', '50', '--json')).stdout.trim().split('\n');
    expect(watchJson).toHaveLength(2);
    for (const line of watchJson) expect((JSON.parse(line) as { locks: LockInfo[] }).locks).toHaveLength(2);

    for (const output of [list, json, inspect, watch].map((result) => result.stdout + result.stderr)) expectNoToken(output, tokens);
    await Promise.all([lock.release(), sem.release()]);
    expect((await cli('list', 'cli:*')).stdout).toBe('no locks held\n');
    expect((await cli('bogus')).code).toBe(2);
  });

  it('CLI release --force lets a waiter in past the bumped fence, and the old holder\'s signal aborts', async () => {
    const old = await appA.locks.acquire('cli:stuck', { ttl: 900 });
    tokens.push(old.token);
    const waiter = appB.locks.acquire('cli:stuck', { wait: 30_000 });
    await eventually(async () => (await appB.locks.inspect('cli:stuck')).waiting, 10_000, 'the waiter to show');

    const refused = await cli('release', 'cli:stuck');
    expect(refused.code).toBe(2);
    expect(refused.stderr).toContain('--force');
    const declined = await runCli(['--redis', server.url, 'release', 'cli:stuck', '--force'], { input: 'n\n' });
    expect(declined.code).toBe(3);
    expect(declined.stderr).toContain('Force-release "cli:stuck" (held by alpha@');
    expect(ownerOf(await redis.get(lockKeyOf('lock:', 'cli:stuck')))).toBe(old.token);

    const released = await runCli(['--redis', server.url, 'release', 'cli:stuck', '--force'], { input: 'y\n' });
    expect(released.code).toBe(0);
    expect(released.stdout).toContain(`Released "cli:stuck": 1 hold of alpha@${hostname()}:${process.pid}. Fence counter now ${old.fence + 1}`);
    expectNoToken(released.stdout + released.stderr, tokens);

    const next = await waiter;
    expect(next.fence).toBeGreaterThan(old.fence + 1); // past the bump
    const reason = await aborted(old.signal);
    expect(reason).toBeInstanceOf(LockLostError);
    await old.release(); // never deletes the new holder's lock
    expect(await appA.locks.isLocked('cli:stuck')).toBe(true);
    await next.release();

    const again = await appA.locks.acquire('cli:stuck2');
    const yes = JSON.parse((await cli('release', 'cli:stuck2', '--force', '--yes', '--json')).stdout) as { released: number; fence: number; holders: Array<{ id: string }> };
    expect(yes).toMatchObject({ key: 'cli:stuck2', released: 1, fence: again.fence + 1 });
    expect(yes.holders[0].id).toBe(appA.locks.instanceId);
    await again.release();
  });

  it('never puts a token in an event', () => {
    expect(events.length).toBeGreaterThan(10);
    expectNoToken(JSON.stringify(events.map(({ type, keys }) => ({ type, keys }))), tokens);
    for (const event of events) expectNoToken(JSON.stringify(event, (_, value: unknown) => (value instanceof Error ? value.message : value)), tokens);
  });

  function spawnHolder(config: unknown): { proc: ChildProcess; holding: Promise<{ instanceId: string; pid: number }> } {
    const env = { ...process.env };
    delete env.NODE_OPTIONS;
    const proc = spawn(process.execPath, [fixture('instance-holder.mjs'), JSON.stringify(config)], { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
    children.add(proc);
    let stderr = '';
    proc.stderr?.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    const holding = new Promise<{ instanceId: string; pid: number }>((resolve, reject) => {
      let out = '';
      proc.stdout?.setEncoding('utf8').on('data', (chunk: string) => {
        out += chunk;
        const line = out.split('\n').find((text) => text.includes('"holding"'));
        if (line) resolve(JSON.parse(line));
      });
      proc.once('exit', (code) => reject(new Error(`holder exited (${code}) before holding: ${stderr}`)));
    });
    return { proc, holding };
  }
});

describe('inspection on Redlock (three masters)', () => {
  let masters: RedisServer[];
  let appA: LockApp;
  let appB: LockApp;
  beforeAll(async () => {
    masters = await RedisServer.startMany(3);
    const redlock = masters.map((master) => master.url);
    appA = await startLockApp({ redlock, appName: 'rl-a' });
    appB = await startLockApp({ redlock, appName: 'rl-b' });
  });
  afterAll(async () => {
    await appA?.close();
    await appB?.close();
    await stopAllRedisServers();
  });

  it('reports what the quorum says, each master, list and the CLI', async () => {
    const lock = await appA.locks.acquire('rl:ins');
    const info = await appB.locks.inspect('rl:ins');
    expect(info).toMatchObject({ held: true, mode: 'exclusive', quorum: 2, fence: lock.fence });
    expect(info.holders[0].instance).toMatchObject({ id: appA.locks.instanceId, app: 'rl-a', alive: true });
    expect(info.masters).toHaveLength(3);
    expect(info.masters?.every((master) => master.up)).toBe(true);
    // Granted at quorum: on a loaded machine the last master's write may still be on its way.
    expect(info.masters?.filter((master) => master.held).length).toBeGreaterThanOrEqual(2);
    expectNoToken(JSON.stringify(info), [lock.token]);
    expect((await appB.locks.list({ match: 'rl:*' })).map((item) => item.key)).toEqual(['rl:ins']);

    await eventually(async () => (await appB.locks.inspect('rl:ins')).masters?.every((master) => master.held) === true, 10_000, 'every master to hold rl:ins');
    const cli = await runCli(['--redlock', masters.map((master) => master.url).join(','), 'inspect', 'rl:ins']);
    expect(cli.code).toBe(0);
    expect(cli.stdout).toContain('rl:ins: held (exclusive)');
    expect(cli.stdout).toContain('redlock: quorum 2');
    expect(cli.stdout.match(/holds it, lease left/g)).toHaveLength(3);

    const released = await runCli(['--redlock', masters.map((master) => master.url).join(','), 'release', 'rl:ins', '--force', '--yes']);
    expect(released.code).toBe(0);
    const next = await appB.locks.acquire('rl:ins', { wait: 10_000 });
    expect(next.fence).toBeGreaterThan(lock.fence + 1);
    await next.release();
    await lock.release();
  });
});

describe('inspection on the memory store', () => {
  let appA: LockApp;
  let appB: LockApp;
  beforeAll(async () => {
    appA = await startLockApp({ store: 'memory', prefix: 'inspect-mem:', appName: 'mem-a' });
    appB = await startLockApp({ store: 'memory', prefix: 'inspect-mem:', appName: 'mem-b' });
  });
  afterAll(async () => {
    await appA?.close();
    await appB?.close();
  });

  it('names the holder app, lists permits and readers', async () => {
    const lock = await appA.locks.acquire('m:1');
    const info = await appB.locks.inspect('m:1');
    expect(info).toMatchObject({ held: true, mode: 'exclusive', fence: lock.fence });
    expect(info.holders[0].instance).toMatchObject({ id: appA.locks.instanceId, app: 'mem-a', pid: process.pid, alive: true });
    const p = await appB.locks.acquire('m:sem', { permits: 2 });
    const r = await appB.locks.acquire('m:doc', { mode: 'read' });
    const listed = await appA.locks.list();
    expect(listed.map((item) => [item.key, item.mode])).toEqual([
      ['m:1', 'exclusive'],
      ['m:sem', 'permits'],
      ['m:doc', 'read'],
    ]);
    expect(listed[1]).toMatchObject({ permits: 2 });
    expect(ids(listed[1])).toEqual([appB.locks.instanceId]);
    expectNoToken(JSON.stringify(listed), [lock.token, p.token, r.token]);
    await Promise.all([lock.release(), p.release(), r.release()]);
    expect(await appA.locks.list()).toEqual([]);
  });
});

function escape(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

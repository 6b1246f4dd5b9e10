/**
 * Leader election across real Node processes (test/fixtures/leader-candidate.mjs, the built package)
 * against real redis-server processes: the leader killed with SIGKILL, and the leader frozen with
 * SIGSTOP past its lease. Each candidate, while leader, writes its epoch to a fenced resource (a
 * script in a separate data Redis that refuses an epoch lower than the highest seen).
 *
 * All timestamps are Date.now() of processes on this one machine, so they share a clock.
 */
import type { Redis } from 'ioredis';
import type { LockModuleOptions } from '../lib/index.js';
import { FixtureProcess, type FixtureEvent } from './support/fixture-process.js';
import { RedisServer, stopAllRedisServers } from './support/redis-server.js';

const TTL = 1_000;

type Mode = 'single Redis' | 'Redlock (3 masters)';

async function lockServers(mode: Mode): Promise<RedisServer[]> {
  return mode === 'single Redis' ? [await RedisServer.start()] : RedisServer.startMany(3);
}

function lockOptions(servers: RedisServer[]): Pick<LockModuleOptions, 'redis' | 'redlock'> {
  return servers.length === 1 ? { redis: servers[0].url } : { redlock: servers.map((server) => server.url) };
}

/** What the fenced resource logged: accepted/rejected writes with writer and epoch, in order. */
async function resourceLog(data: Redis): Promise<Array<{ accepted: boolean; writer: string; epoch: number }>> {
  return (await data.lrange('resource:log', 0, -1)).map((entry) => {
    const [outcome, writer, epoch] = entry.split(':');
    return { accepted: outcome === 'accepted', writer, epoch: Number(epoch) };
  });
}

/** Epochs that went down among accepted writes (must be none). */
function decreasing(log: Array<{ accepted: boolean; epoch: number }>): number[][] {
  const accepted = log.filter((entry) => entry.accepted).map((entry) => entry.epoch);
  return accepted.flatMap((epoch, i) => (i > 0 && epoch < accepted[i - 1] ? [[accepted[i - 1], epoch]] : []));
}

describe('leader election across processes', () => {
  afterEach(async () => {
    await FixtureProcess.killAll();
  });
  afterAll(async () => {
    await FixtureProcess.killAll();
    await stopAllRedisServers();
  });

  async function startCandidates(servers: RedisServer[], dataPort: number, key: string, workMs: number): Promise<FixtureProcess[]> {
    const candidates = [0, 1, 2].map((i) =>
      FixtureProcess.spawn('leader-candidate.mjs', { name: `c${i}`, lock: lockOptions(servers), key, ttl: TTL, dataPort, workMs }, `candidate ${i}`),
    );
    await Promise.all(candidates.map((candidate) => candidate.waitFor((e) => e.event === 'ready', 'ready', 90_000)));
    return candidates;
  }

  /** The first candidate to report `elected` (with an epoch above `after`), and its event. */
  async function nextLeader(candidates: FixtureProcess[], after: number, what: string, ms = 30_000): Promise<[FixtureProcess, FixtureEvent]> {
    return Promise.any(
      candidates.map(async (candidate) => [candidate, await candidate.waitFor((e) => e.event === 'elected' && e.epoch > after, what, ms)] as [FixtureProcess, FixtureEvent]),
    ).catch((error: AggregateError) => {
      throw new Error(`${what}: ${error.errors.map(String).join('\n')}`);
    });
  }

  describe.each<Mode>(['single Redis', 'Redlock (3 masters)'])('%s', (mode) => {
    it('elects one of three processes; SIGKILL the leader: another is elected once its lease ran out, with a larger epoch', async () => {
      const servers = await lockServers(mode);
      const dataServer = await RedisServer.start();
      const data = dataServer.client();
      try {
        const candidates = await startCandidates(servers, dataServer.port, 'leader:kill', 100);
        const [leader, elected] = await nextLeader(candidates, 0, 'a first leader', 60_000);
        // It leads past several ttls (writes accepted, renewals going on) while nobody else is elected.
        await leader.waitFor((e) => e.event === 'write' && e.at > elected.at + 3 * TTL, 'writes past three ttls', 60_000);
        expect(candidates.map((candidate) => candidate.of('elected').length)).toEqual(candidates.map((c) => (c === leader ? 1 : 0)));
        expect(leader.of('write').every((write) => write.accepted)).toBe(true);

        const killedAt = Date.now();
        await leader.kill();
        const survivors = candidates.filter((candidate) => candidate !== leader);
        const [next, nextElected] = await nextLeader(survivors, elected.epoch, 'a leader after SIGKILL');
        console.log(`[leader] ${mode}: new leader elected ${nextElected.at - killedAt} ms after SIGKILL of the leader (ttl ${TTL})`);
        expect(nextElected.epoch).toBeGreaterThan(elected.epoch);
        await next.waitFor((e) => e.event === 'write' && e.epoch === nextElected.epoch, 'a write of the new leader');
        // Exactly one of the survivors leads.
        expect(survivors.map((candidate) => candidate.of('elected').length).sort()).toEqual([0, 1]);
        const log = await resourceLog(data);
        expect(decreasing(log)).toEqual([]);
        expect(log.filter((entry) => !entry.accepted)).toEqual([]);
        for (const candidate of survivors) expect(candidate.stderr).toBe('');
      } finally {
        await FixtureProcess.killAll();
        await data.quit();
        await dataServer.stop();
        await Promise.all(servers.map((server) => server.stop()));
      }
    }, 180_000);
  });

  it('SIGSTOP the leader past its ttl: its lease ended before the next leader started, it never sees an unaborted signal after that, and its late write carries the old epoch (refused)', async () => {
    const servers = await lockServers('single Redis');
    const dataServer = await RedisServer.start();
    const data = dataServer.client();
    try {
      // Long work units: the stop lands between a check of the signal and the write after it.
      const candidates = await startCandidates(servers, dataServer.port, 'leader:stop', 1_500);
      const [old, elected] = await nextLeader(candidates, 0, 'a first leader', 60_000);
      await old.waitFor((e) => e.event === 'write' && e.accepted, 'a first write');
      const checks = old.of('check').length;
      await old.waitFor((e) => e.event === 'check' && old.of('check').length > checks, 'a check before the next unit of work');
      old.signal('SIGSTOP');
      const stoppedAt = Date.now();

      const others = candidates.filter((candidate) => candidate !== old);
      const [next, nextElected] = await nextLeader(others, elected.epoch, 'a leader while the first is stopped');
      await next.waitFor((e) => e.event === 'write' && e.epoch === nextElected.epoch && e.accepted, 'a write of the new leader');
      expect(nextElected.epoch).toBeGreaterThan(elected.epoch);

      old.signal('SIGCONT');
      const aborted = await old.waitFor((e) => e.event === 'aborted', 'its signal to abort after SIGCONT');
      const lateWrite = await old.waitFor((e) => e.event === 'write' && e.at > nextElected.at, 'its late write');
      await old.waitFor((e) => e.event === 'check' && e.aborted, 'a check seeing the signal aborted');
      console.log(
        `[leader] SIGSTOP: new leader elected ${nextElected.at - stoppedAt} ms after the stop (ttl ${TTL}); ` +
          `old lease ended ${nextElected.at - aborted.expiresAt} ms before the new leader started`,
      );

      // Its lease, as it knew it, ended no later than the new leader's start: from then on its signal counts as aborted.
      expect(aborted.epoch).toBe(elected.epoch);
      expect(aborted.expiresAt).toBeLessThanOrEqual(nextElected.at);
      // It never saw its signal unaborted after the new leader started.
      const unabortedLate = old.of('check').filter((check) => !check.aborted && check.at >= nextElected.at);
      expect(unabortedLate).toEqual([]);
      // The write it had started before the stop landed late, with the old epoch, and was refused.
      expect(lateWrite).toMatchObject({ epoch: elected.epoch, accepted: false });
      const log = await resourceLog(data);
      expect(log.filter((entry) => !entry.accepted)).toEqual(
        old.of('write').filter((write) => !write.accepted).map((write) => ({ accepted: false, writer: old === candidates[0] ? 'c0' : old === candidates[1] ? 'c1' : 'c2', epoch: write.epoch })),
      );
      expect(decreasing(log)).toEqual([]);
      // Only one leader among the others, and the resumed process does not lead while it does.
      expect(others.map((candidate) => candidate.of('elected').length).sort()).toEqual([0, 1]);
      expect(old.of('elected').filter((e) => e.epoch > elected.epoch)).toEqual([]);
    } finally {
      await FixtureProcess.killAll();
      await data.quit();
      await dataServer.stop();
      await Promise.all(servers.map((server) => server.stop()));
    }
  }, 180_000);
});

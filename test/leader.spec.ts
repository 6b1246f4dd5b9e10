/**
 * Leader election (LockService.lead, @Leader) with several Nest apps in this process, each with
 * its own LockModule, against a real redis-server (or three Redlock masters, or the memory store).
 *
 * Every leader's term is recorded (elected / signal aborted, on this process's monotonic clock) so
 * that each test also checks the safety invariant over its whole history: terms never overlap (a
 * new leader starts only after the previous one's signal aborted) and epochs strictly increase.
 */
import { Injectable, Module, type OnApplicationBootstrap } from '@nestjs/common';
import { performance } from 'node:perf_hooks';
import { Redis } from 'ioredis';
import {
  Leader,
  LockConfigError,
  LockKeyError,
  LockLostError,
  type LeaderCampaign,
  type LeaderEvent,
  type Leadership,
  type LockEvent,
  type LockModuleOptions,
} from '../lib/index.js';
import { RedisServer, stopAllRedisServers } from './support/redis-server.js';
import { eventually, startLockApp, type LockApp } from './support/lock-app.js';
import { watchProcessFailures } from './support/process-failures.js';

/** One leader's term as seen by its run callback. */
interface TermRecord {
  app: number;
  epoch: number;
  electedAt: number;
  abortedAt?: number;
  reason?: unknown;
}

/** Records terms and checks them: no overlap, epochs strictly increasing in election order. */
class History {
  readonly terms: TermRecord[] = [];

  /** A run callback for app `app` that leads until its signal aborts (or `body` returns). */
  runner(app: number, body?: (leadership: Leadership, term: TermRecord) => Promise<void>) {
    return async (leadership: Leadership): Promise<void> => {
      const term: TermRecord = { app, epoch: leadership.epoch, electedAt: performance.now() };
      this.terms.push(term);
      const signal = leadership.signal;
      const onAbort = (): void => {
        term.abortedAt = performance.now();
        term.reason = signal.reason;
      };
      if (signal.aborted) onAbort();
      else signal.addEventListener('abort', onAbort, { once: true });
      if (body) await body(leadership, term);
      else await new Promise<void>((resolve) => (signal.aborted ? resolve() : signal.addEventListener('abort', () => resolve(), { once: true })));
    };
  }

  /** Terms still running (signal not aborted). */
  get leading(): TermRecord[] {
    return this.terms.filter((term) => term.abortedAt === undefined);
  }

  /** Pairs of terms that overlapped, and epochs that did not increase. Empty when safe. */
  violations(): string[] {
    const problems: string[] = [];
    const ordered = [...this.terms].sort((a, b) => a.electedAt - b.electedAt);
    for (let i = 1; i < ordered.length; i++) {
      const previous = ordered[i - 1];
      const term = ordered[i];
      if (!(term.epoch > previous.epoch)) problems.push(`epoch ${term.epoch} (app ${term.app}) after ${previous.epoch} (app ${previous.app})`);
      if (previous.abortedAt === undefined || previous.abortedAt > term.electedAt) {
        problems.push(`app ${term.app} elected (epoch ${term.epoch}) while app ${previous.app} (epoch ${previous.epoch}) still led`);
      }
    }
    return problems;
  }
}

type Backend = 'single Redis' | 'Redlock (3 masters)' | 'memory store';

describe('leader election', () => {
  let watch: ReturnType<typeof watchProcessFailures>;
  const apps: LockApp[] = [];
  const campaigns: LeaderCampaign[] = [];
  let server: RedisServer;
  let masters: RedisServer[] = [];
  let prefixes = 0;

  beforeAll(async () => {
    server = await RedisServer.start();
  });
  afterAll(async () => {
    await stopAllRedisServers();
  });
  beforeEach(() => {
    watch = watchProcessFailures();
  });
  afterEach(async () => {
    await Promise.all(campaigns.splice(0).map((campaign) => campaign.stop()));
    await Promise.all(apps.splice(0).map((app) => app.close()));
    watch.stop();
  });

  async function backendOptions(backend: Backend): Promise<LockModuleOptions> {
    const prefix = `lead${++prefixes}:`;
    if (backend === 'memory store') return { store: 'memory', prefix };
    if (backend === 'single Redis') return { redis: server.url, prefix };
    if (masters.length === 0) masters = await RedisServer.startMany(3);
    return { redlock: masters.map((master) => master.url), prefix };
  }

  /** `count` apps on one backend; events of app i go to events[i]. */
  async function startApps(count: number, options: LockModuleOptions, extra: { providers?: any[] } = {}) {
    const events: LockEvent[][] = [];
    const started: LockApp[] = [];
    for (let i = 0; i < count; i++) {
      const seen: LockEvent[] = [];
      events.push(seen);
      const app = await startLockApp({ ...options, onEvent: (event) => seen.push(event) }, extra);
      apps.push(app);
      started.push(app);
    }
    return { apps: started, events };
  }

  const leaderEvents = (events: LockEvent[]): LeaderEvent[] => events.filter((event): event is LeaderEvent => 'leader' in event && event.leader === true);

  describe.each<Backend>(['single Redis', 'Redlock (3 masters)', 'memory store'])('%s', (backend) => {
    it('elects exactly one of three apps; closing it, then stop(), hands over at once with larger epochs', async () => {
      const key = 'leader:three';
      // Long ttl and poll interval: only the leader's release can wake a waiting candidate in time.
      const options = { ...(await backendOptions(backend)), pollInterval: 120_000 };
      const { apps: three, events } = await startApps(3, options);
      const history = new History();
      const mine = three.map((app, i) => app.locks.lead(key, history.runner(i), { ttl: 120_000 }));
      campaigns.push(...mine);

      await eventually(() => history.terms.length >= 1, 20_000, 'a first leader');
      const first = history.terms[0];
      // The two others are campaigning (waiting on the lock), and none of them leads.
      const others = [0, 1, 2].filter((i) => i !== first.app);
      await eventually(() => others.every((i) => three[i].locks.leaseStats.waiters >= 1), 20_000, 'the other candidates to wait');
      expect(history.terms).toHaveLength(1);
      expect(mine.map((campaign) => campaign.isLeader)).toEqual([0, 1, 2].map((i) => i === first.app));
      expect(mine[first.app].leadership?.epoch).toBe(first.epoch);

      // Closing the leader's app resigns: another is elected long before the 120 s ttl.
      const closedAt = performance.now();
      await three[first.app].close();
      await eventually(() => history.terms.length >= 2, 20_000, 'a second leader after the first app closed');
      const second = history.terms[1];
      const afterClose = Math.round(second.electedAt - closedAt);
      expect(others).toContain(second.app);
      expect(second.epoch).toBeGreaterThan(first.epoch);
      expect(first.reason).toBeInstanceOf(LockLostError);

      // stop() on the second leader: the third app takes over, again without waiting for the ttl.
      const stoppedAt = performance.now();
      await mine[second.app].stop();
      expect(mine[second.app].isLeader).toBe(false);
      await eventually(() => history.terms.length >= 3, 20_000, 'a third leader after stop()');
      const third = history.terms[2];
      console.log(`[leader] ${backend}: hand-over after app close ${afterClose} ms, after stop() ${Math.round(third.electedAt - stoppedAt)} ms (ttl 120000)`);
      expect(third.app).toBe(others.find((i) => i !== second.app));
      expect(third.epoch).toBeGreaterThan(second.epoch);
      expect(history.violations()).toEqual([]);

      expect(leaderEvents(events[first.app])).toEqual([
        { type: 'elected', keys: [key], leader: true, epoch: first.epoch, waitedMs: expect.any(Number) },
        { type: 'resigned', keys: [key], leader: true, epoch: first.epoch, heldMs: expect.any(Number), reason: 'shutdown' },
      ]);
      expect(leaderEvents(events[second.app])).toEqual([
        { type: 'elected', keys: [key], leader: true, epoch: second.epoch, waitedMs: expect.any(Number) },
        { type: 'resigned', keys: [key], leader: true, epoch: second.epoch, heldMs: expect.any(Number), reason: 'stop' },
      ]);
      expect([...watch.unhandledRejections, ...watch.uncaughtExceptions]).toEqual([]);
    });

    it('runs a @Leader method only on the elected app, after bootstrap, with the Leadership', async () => {
      const calls: Array<{ app: string; booted: boolean; leadership: Leadership }> = [];
      const options = await backendOptions(backend);

      @Injectable()
      class Boot implements OnApplicationBootstrap {
        booted = false;
        onApplicationBootstrap(): void {
          this.booted = true;
        }
      }
      @Injectable()
      class Reconciler {
        constructor(private readonly boot: Boot) {}
        name = '';

        @Leader('leader:decorated', { ttl: 60_000 })
        async reconcile(leadership: Leadership): Promise<void> {
          calls.push({ app: this.name, booted: this.boot.booted, leadership });
          await new Promise((resolve) => leadership.signal.addEventListener('abort', resolve, { once: true }));
        }
      }
      // Boot lives in the root module, whose bootstrap hooks run after LockModule's.
      @Module({ providers: [Boot, Reconciler], exports: [Boot, Reconciler] })
      class FeatureModule {}

      const three: LockApp[] = [];
      for (let i = 0; i < 3; i++) {
        const app = await startLockApp({ ...options, pollInterval: 120_000 }, { imports: [FeatureModule] });
        app.app.get(Reconciler).name = `app${i}`;
        apps.push(app);
        three.push(app);
      }
      await eventually(() => calls.length >= 1, 20_000, 'a leader method to run');
      await eventually(() => three.filter((app) => app.locks.leaseStats.waiters >= 1).length === 2, 20_000, 'two candidates to wait');
      expect(calls).toHaveLength(1);
      const [call] = calls;
      expect(call.booted).toBe(true);
      expect(call.leadership).toMatchObject({ key: 'leader:decorated', epoch: expect.any(Number) });
      expect(call.leadership.signal).toBeInstanceOf(AbortSignal);
      expect(call.leadership.signal.aborted).toBe(false);

      // Resigning hands it to one of the others.
      const leaderIndex = Number(call.app.slice(3));
      await call.leadership.resign();
      expect(call.leadership.signal.aborted).toBe(true);
      await eventually(() => calls.length >= 2, 20_000, 'another leader after resign()');
      expect(calls[1].app).not.toBe(call.app);
      expect(calls[1].leadership.epoch).toBeGreaterThan(call.leadership.epoch);
      expect(calls[1].booted).toBe(true);
      // Shutdown of the app whose leader resigned stops its campaign cleanly.
      await three[leaderIndex].close();
      expect([...watch.unhandledRejections, ...watch.uncaughtExceptions]).toEqual([]);
    });
  });

  it('campaigns again when run throws (logged, after a backoff), with no unhandled rejection', async () => {
    const options = await backendOptions('single Redis');
    const { apps: one, events } = await startApps(1, options);
    const history = new History();
    let throws = 3;
    const failing = history.runner(0, async (leadership) => {
      if (throws-- > 0) throw new Error('reconcile failed');
      await new Promise((resolve) => leadership.signal.addEventListener('abort', resolve, { once: true }));
    });
    campaigns.push(one[0].locks.lead('leader:throws', failing, { ttl: 10_000 }));
    await eventually(() => history.terms.length >= 4, 30_000, 'four terms of a run that throws three times');
    expect(history.violations()).toEqual([]);
    // Each failed term ended with its signal aborted and the lock released before the next began.
    expect(history.terms.slice(0, 3).map((term) => term.reason instanceof LockLostError)).toEqual([true, true, true]);
    const resigned = leaderEvents(events[0]).filter((event) => event.type === 'resigned');
    expect(resigned.map((event) => event.type === 'resigned' && event.reason)).toEqual(['threw', 'threw', 'threw']);
    expect(history.leading).toHaveLength(1);
    expect([...watch.unhandledRejections, ...watch.uncaughtExceptions]).toEqual([]);
  });

  it('hands leadership over when its term runs out (rolling load), epochs increasing', async () => {
    const options = await backendOptions('single Redis');
    const { apps: two, events } = await startApps(2, { ...options, pollInterval: 120_000 });
    const history = new History();
    campaigns.push(...two.map((app, i) => app.locks.lead('leader:term', history.runner(i), { ttl: 60_000, term: 300 })));
    await eventually(() => new Set(history.terms.map((term) => term.app)).size === 2 && history.terms.length >= 4, 30_000, 'terms on both apps');
    expect(history.violations()).toEqual([]);
    const termEnds = [...events[0], ...events[1]].filter((event) => event.type === 'resigned');
    expect(termEnds.length).toBeGreaterThanOrEqual(3);
    expect(new Set(termEnds.map((event) => event.type === 'resigned' && event.reason))).toEqual(new Set(['term']));
    for (const term of history.terms.filter((t) => t.abortedAt !== undefined)) {
      expect(String((term.reason as Error).message)).toContain('term');
    }
  });

  it("reports 'lost' when the lease is lost (key deleted in Redis), aborts the signal, then is elected again", async () => {
    const key = 'leader:lost';
    const options = await backendOptions('single Redis');
    const { apps: one, events } = await startApps(1, options);
    const history = new History();
    campaigns.push(one[0].locks.lead(key, history.runner(0), { ttl: 600 }));
    await eventually(() => history.terms.length >= 1, 20_000, 'a leader');
    const redis: Redis = server.client();
    try {
      expect(await redis.del(`${options.prefix}{${key}}`)).toBe(1);
    } finally {
      await redis.quit();
    }
    await eventually(() => history.terms.length >= 2, 20_000, 'a new term after the loss');
    expect(history.terms[0].reason).toBeInstanceOf(LockLostError);
    expect(history.violations()).toEqual([]);
    expect(leaderEvents(events[0]).slice(0, 3)).toEqual([
      { type: 'elected', keys: [key], leader: true, epoch: history.terms[0].epoch, waitedMs: expect.any(Number) },
      { type: 'lost', keys: [key], leader: true, epoch: history.terms[0].epoch, heldMs: expect.any(Number), error: expect.any(LockLostError) },
      { type: 'elected', keys: [key], leader: true, epoch: history.terms[1].epoch, waitedMs: expect.any(Number) },
    ]);
    // The lock's own 'lost' event is there too, without `leader`.
    expect(events[0].some((event) => event.type === 'lost' && event.leader === undefined)).toBe(true);
  });

  it('rejects bad options and arguments with LockConfigError / LockKeyError naming them', async () => {
    const { apps: one } = await startApps(1, await backendOptions('memory store'));
    const locks = one[0].locks;
    const run = async (): Promise<void> => undefined;
    const bad: Array<[unknown, RegExp]> = [
      [{ ttl: 0 }, /"ttl": 0/],
      [{ ttl: Number.NaN }, /"ttl": NaN/],
      [{ term: -1 }, /"term": -1/],
      [{ term: '5s' }, /"term": "5s"/],
      [{ wait: 10 }, /Unknown leader option "wait"/],
      [null, /"options": null/],
    ];
    for (const [options, message] of bad) {
      expect(() => locks.lead('leader:bad', run, options as never)).toThrow(LockConfigError);
      expect(() => locks.lead('leader:bad', run, options as never)).toThrow(message);
    }
    expect(() => locks.lead('leader:bad', 'run' as never)).toThrow(LockConfigError);
    expect(() => locks.lead('', run)).toThrow(LockKeyError);

    expect(() => {
      class BadTtl {
        @Leader('leader:bad', { ttl: -5 })
        run(): void {}
      }
      return BadTtl;
    }).toThrow(/@Leader on BadTtl\.run: Invalid leader option "ttl": -5/);
    expect(() => {
      class BadKey {
        @Leader('')
        run(): void {}
      }
      return BadKey;
    }).toThrow(LockKeyError);
  });
});

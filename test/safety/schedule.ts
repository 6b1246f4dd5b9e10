/**
 * Seeded generation of what the safety checker's clients do and which faults it injects.
 *
 * Everything here is drawn with fast-check (`fc.sample(arbitrary, { seed, numRuns: 1 })`), so a seed
 * gives the same operation schedule and the same fault plan on every run: a failing seed replays the
 * same schedule (the interleaving with real servers and timers is of course not reproducible). Each
 * worker gets its own list from a seed derived from (run seed, app, worker); the fault plan has its own.
 *
 * Why not fc.commands / fc.scheduler: the system under test is several processes talking to real
 * Redis servers with real timers (leases of a few hundred ms, SIGSTOP, slow networks). fast-check's
 * model-based runner executes commands one at a time and its scheduler controls promise order inside
 * one process; neither can drive concurrent workers in other processes. So fast-check generates the
 * schedule and the invariants are checked over the recorded history afterwards (Jepsen style).
 */
import fc from 'fast-check';

export type TopologyName = 'single' | 'cluster' | 'sentinel' | 'redlock' | 'memory';
export const TOPOLOGIES: readonly TopologyName[] = ['single', 'cluster', 'sentinel', 'redlock', 'memory'];

/** One operation of a worker. Times in ms. */
export interface Op {
  /** `lead`: LockService.lead(key, run) campaigns; its term is recorded as an exclusive hold of the key. */
  via: 'acquire' | 'tryAcquire' | 'withLock' | 'lead';
  keys: string[];
  permits?: number;
  mode?: 'read';
  fair?: boolean;
  ttl: number;
  /** acquire / withLock only (tryAcquire never waits). */
  wait: number;
  /** How long the lock is held once granted. */
  holdMs: number;
  /** Pause between two "use" points while holding. */
  step: number;
  /** lock.extend(extendTtl) this far into the hold. */
  extendAt?: number;
  extendTtl?: number;
  /** Early release this far into the hold (then the hold ends). */
  releaseAt?: number;
  /** Abort the wait through an AbortSignal after this long. */
  abortAfter?: number;
  /** Busy loop (the whole process's event loop blocked) this long, this far into the hold. */
  blockMs?: number;
  blockAt?: number;
  /** Runs inside the hold (withLock scope: reentrant when it names the same keys). */
  nested?: Op;
  /** Idle time after the operation. */
  idleMs: number;
}

export interface KeySpace {
  /** Exclusive keys (also taken fair). */
  exclusive: string[];
  /** Semaphore keys and the permits their holders agree on. */
  permits: Array<[string, number]>;
  /** Read-write keys: readers, plain and fair writers. */
  readWrite: string[];
  /** Leader election keys (exclusive only): every term is an exclusive hold, its epoch the fence. */
  leader: string[];
}

/** The lock prefix of every app in a run (its keys in Redis are `<prefix>{K}` and siblings). */
export const PREFIX = 'safety:';
/** The apps' `redlockHungAfter`: short, so a hangMaster fault lasts past it. */
export const REDLOCK_HUNG_AFTER_MS = 1_000;

/**
 * Keys with odd characters on purpose: an unbalanced or empty hash tag (`}order:42`, `{}`, `x}{y`),
 * a hash tag inside the key (`{a}b`), a newline, an emoji. On a Cluster the plain keys land in
 * different slots, so multi-key operations cross slots.
 */
export function keySpace(topology: TopologyName): KeySpace {
  const exclusive = ['acct:1', 'acct:2', '}order:42', '{a}b', 'x}{y', 'line\nbreak', 'lock-🔒'];
  const leader = ['leader:job'];
  if (topology === 'redlock') return { exclusive, permits: [], readWrite: [], leader };
  return {
    exclusive,
    permits: [
      ['sem:1', 1],
      ['{}', 2],
      ['sem:3', 3],
    ],
    readWrite: ['catalog', 'doc:}{📄'],
    leader,
  };
}

/** Which operation kinds a store supports (Redlock: exclusive only, no fair). */
function supports(topology: TopologyName): { permits: boolean; read: boolean; fair: boolean } {
  const full = topology !== 'redlock';
  return { permits: full, read: full, fair: full };
}

const TTL = fc.constantFrom(200, 300, 400, 600);
/**
 * Longer than any call or hold, and than a run of back-to-back faults that may each hold a release
 * back (faults come 0.3-2 s apart): a hold left behind in Redis outlasts the time invariant 11 gives
 * a release, and is seen for it (the hold sampler runs on through the wait for the longest ttl).
 */
const LONG_TTL = 20_000;
/**
 * Some locks take a long ttl:
 * - A hold that outlives its owner (invariant 11) only shows when it lasts longer than the
 *   invariant's slack. One with a short ttl expires first, so the bug that leaves it (an attempt
 *   that runs after its own release) would go unseen.
 * - On Redlock, the per-master bound (the lease's validity, at most 5 s) then outlasts the 1 s
 *   bound of a whole call: a down master must still cost nothing there.
 * Only plain exclusive locks on the other stores: a fair, permit, read or leader key held that long
 * by a paused process would only make its waiters time out. (Released at the end of their hold;
 * the run waits out the longest ttl before its final probe.)
 */
const SOMETIMES_LONG_TTL = fc.oneof({ weight: 3, arbitrary: TTL }, { weight: 1, arbitrary: fc.constant(LONG_TTL) });
/** `arbitrary` one time in `every`, else null (fc.option's freq is the other way round). */
const sometimes = <T>(every: number, arbitrary: fc.Arbitrary<T>): fc.Arbitrary<T | null> =>
  fc.oneof({ weight: every - 1, arbitrary: fc.constant(null) }, { weight: 1, arbitrary });

const VIA = fc.constantFrom<Op['via']>('acquire', 'tryAcquire', 'withLock');

/** Short holds mostly; some longer than the ttl, so automatic renewal has to keep them. */
const HOLD = fc.oneof(
  { weight: 6, arbitrary: fc.integer({ min: 10, max: 250 }) },
  { weight: 3, arbitrary: fc.integer({ min: 500, max: 1_500 }) },
);

interface Shape {
  keys: string[];
  permits?: number;
  mode?: 'read';
  fair?: boolean;
  /** Which kind of key, to pick a matching nested call. */
  kind: 'exclusive' | 'permits' | 'read' | 'writer' | 'leader';
  /** A permits number differing from the key's agreed one (must get LockConfigError, or wait). */
  mismatch?: boolean;
}

function shapeArb(topology: TopologyName): fc.Arbitrary<Shape> {
  const space = keySpace(topology);
  const can = supports(topology);
  const options: Array<fc.WeightedArbitrary<Shape>> = [
    {
      weight: 4,
      arbitrary: fc.constantFrom(...space.exclusive).map((key) => ({ keys: [key], kind: 'exclusive' as const })),
    },
    {
      // Several keys, all or nothing (on a Cluster: in different slots).
      weight: 2,
      arbitrary: fc
        .uniqueArray(fc.constantFrom(...space.exclusive), { minLength: 2, maxLength: 3 })
        .map((keys) => ({ keys, kind: 'exclusive' as const })),
    },
    {
      // A leader election: campaign, lead for a while (renewed), resign.
      weight: 1,
      arbitrary: fc.constantFrom(...space.leader).map((key) => ({ keys: [key], kind: 'leader' as const })),
    },
  ];
  if (can.fair) {
    options.push({
      weight: 1,
      arbitrary: fc.constantFrom(...space.exclusive).map((key) => ({ keys: [key], fair: true, kind: 'exclusive' as const })),
    });
  }
  if (can.permits) {
    options.push({
      // A writer on a semaphore key: permit holders drain for it, and none is handed over past it.
      weight: 1,
      arbitrary: fc.constantFrom(...space.permits.map(([key]) => key)).map((key) => ({ keys: [key], kind: 'writer' as const })),
    });
    options.push({
      weight: 4,
      arbitrary: fc
        .tuple(fc.constantFrom(...space.permits), fc.integer({ min: 0, max: 9 }))
        .map(([[key, permits], roll]) =>
          roll === 0
            ? { keys: [key], permits: permits === 1 ? 2 : permits - 1, kind: 'permits' as const, mismatch: true }
            : { keys: [key], permits, kind: 'permits' as const },
        ),
    });
  }
  if (can.read) {
    options.push(
      { weight: 4, arbitrary: fc.constantFrom(...space.readWrite).map((key) => ({ keys: [key], mode: 'read' as const, kind: 'read' as const })) },
      {
        weight: 1,
        arbitrary: fc.constant({ keys: [...space.readWrite], mode: 'read' as const, kind: 'read' as const }),
      },
      {
        // A writer on a key readers use: plain or fair.
        weight: 2,
        arbitrary: fc
          .tuple(fc.constantFrom(...space.readWrite), fc.boolean())
          .map(([key, fair]) => ({ keys: [key], fair: fair || undefined, kind: 'writer' as const })),
      },
    );
  }
  return fc.oneof(...options);
}

function opArb(topology: TopologyName, depth: number): fc.Arbitrary<Op> {
  return fc
    .record({
      shape: shapeArb(topology),
      via: VIA,
      ttl: SOMETIMES_LONG_TTL,
      wait: fc.oneof({ weight: 1, arbitrary: fc.constant(0) }, { weight: 5, arbitrary: fc.integer({ min: 100, max: 3_000 }) }),
      holdMs: HOLD,
      step: fc.integer({ min: 15, max: 60 }),
      extend: sometimes(6, fc.tuple(fc.double({ min: 0, max: 1, noNaN: true }), TTL)),
      release: sometimes(8, fc.double({ min: 0, max: 1, noNaN: true })),
      abortAfter: sometimes(8, fc.integer({ min: 20, max: 600 })),
      block: sometimes(150, fc.tuple(fc.double({ min: 0, max: 1, noNaN: true }), fc.integer({ min: 300, max: 900 }))),
      nestedRoll: fc.integer({ min: 0, max: 99 }),
      nestedVia: VIA,
      nestedHold: fc.integer({ min: 10, max: 400 }),
      idleMs: fc.integer({ min: 0, max: 40 }),
    })
    .map((r): Op => {
      const s = r.shape;
      // A fair writer is one key, exclusive, and waits (tryAcquire has nothing to be fair about).
      const via: Op['via'] = s.kind === 'leader' ? 'lead' : s.fair && r.via === 'tryAcquire' ? 'acquire' : r.via;
      const longTtlAllowed = topology === 'redlock' || (s.kind === 'exclusive' && !s.fair);
      const op: Op = {
        via,
        keys: s.keys,
        ttl: r.ttl === LONG_TTL && !longTtlAllowed ? 600 : r.ttl,
        // A fair waiter, or a campaign (for this long before it stops), waits a while.
        wait: s.fair || s.kind === 'leader' ? Math.max(r.wait, 1_500) : r.wait,
        holdMs: r.holdMs,
        step: r.step,
        idleMs: r.idleMs,
      };
      // Readers hold a while, so that they overlap each other and a waiting writer sees a stream of them.
      if (s.kind === 'read') op.holdMs = Math.max(op.holdMs, 200 + (r.nestedHold % 400));
      if (s.permits !== undefined) op.permits = s.permits;
      if (s.mode) op.mode = s.mode;
      if (s.fair) op.fair = true;
      if (s.kind === 'leader') {
        // A term: renewed by the lease keeper, maybe blocked; no extend, early release or nesting.
        if (r.block && depth === 0) [op.blockAt, op.blockMs] = [Math.floor(r.block[0] * r.holdMs), r.block[1]];
        return op;
      }
      if (r.extend) [op.extendAt, op.extendTtl] = [Math.floor(r.extend[0] * r.holdMs), r.extend[1]];
      if (r.release) op.releaseAt = Math.floor(r.release * r.holdMs);
      if (r.abortAfter !== null && via !== 'tryAcquire' && op.wait > 0) op.abortAfter = r.abortAfter;
      if (r.block && depth === 0) [op.blockAt, op.blockMs] = [Math.floor(r.block[0] * r.holdMs), r.block[1]];
      // Nested calls inside a withLock scope (the reentrancy scope).
      if (via === 'withLock' && depth === 0 && !s.mismatch && r.nestedRoll < 35) {
        const inner: Op = {
          via: r.nestedVia,
          keys: s.keys,
          ttl: op.ttl,
          wait: 200,
          holdMs: r.nestedHold,
          step: r.step,
          idleMs: 0,
        };
        if (s.kind === 'permits' && r.nestedRoll < 25) {
          // An exclusive section inside a permit scope of the same key: must really be exclusive.
          inner.via = 'withLock';
        } else if (s.kind === 'permits') {
          inner.permits = s.permits;
        } else if (s.kind === 'read' && r.nestedRoll < 15) {
          // A writer inside a read scope of the same key: refused (LockConfigError), never admitted.
          inner.via = 'withLock';
        } else if (s.kind === 'read') {
          inner.mode = 'read';
        }
        op.nested = inner;
        op.holdMs = Math.max(op.holdMs, r.nestedHold + 50);
      }
      return op;
    });
}

/** A 32-bit seed for one stream of the run (worker, fault plan), derived from the run's seed. */
export function deriveSeed(seed: number, ...parts: number[]): number {
  let h = (seed ^ 0x9e3779b9) >>> 0;
  for (const part of [...parts, parts.length]) {
    h = Math.imul(h ^ (part + 0x7f4a7c15), 0x85ebca6b) >>> 0;
    h = (h ^ (h >>> 13)) >>> 0;
  }
  return h | 0;
}

/** The operation list of one worker (workers cycle through it if a run outlasts it). */
export function workerOps(topology: TopologyName, seed: number, app: number, worker: number, count = 300): Op[] {
  return fc.sample(fc.array(opArb(topology, 0), { minLength: count, maxLength: count }), {
    seed: deriveSeed(seed, 1, app, worker),
    numRuns: 1,
  })[0] as Op[];
}

/**
 * Dedicated fair apps: on these topologies every client process also runs an app (its own
 * LockService, so its own connection) with a worker per role:
 *   0  fair locks on FAIR_KEYS only, with holds long enough to span a fault's start: handoffs by a
 *      fair release happen while the waiter sleeps between attempts (in a mixed app it is mostly
 *      inside an attempt queued behind other workers' calls, a different path), also during a
 *      frozen replica;
 *   1  a stream of readers of the first read-write key (long holds, no idle time): with the other
 *      apps' streams, readers overlap continuously...
 *   2  ...while a fair writer waits for that key (writers must not starve).
 */
export const FAIR_KEYS = ['fair:1', 'fair:}2'];

/** Workers per dedicated fair app (0: none). */
export function fairAppWorkers(topology: TopologyName): number {
  return topology === 'sentinel' || topology === 'single' ? 3 : 0;
}

/** The operation list of worker `worker` (its role) of a dedicated fair app. */
export function fairWorkerOps(topology: TopologyName, seed: number, app: number, worker: number, count = 200): Op[] {
  const streamKey = keySpace(topology).readWrite[0];
  const base = {
    via: fc.constantFrom<Op['via']>('acquire', 'withLock'),
    ttl: TTL,
    step: fc.integer({ min: 15, max: 60 }),
  };
  const op: fc.Arbitrary<Op> =
    worker % 3 === 0
      ? fc
          .record({ ...base, key: fc.constantFrom(...FAIR_KEYS), wait: fc.integer({ min: 2_000, max: 6_000 }), holdMs: fc.integer({ min: 150, max: 1_500 }), idleMs: fc.integer({ min: 0, max: 100 }) })
          .map(({ key, ...rest }): Op => ({ ...rest, keys: [key], fair: true }))
      : worker % 3 === 1
        ? fc
            .record({ ...base, wait: fc.integer({ min: 1_000, max: 3_000 }), holdMs: fc.integer({ min: 300, max: 900 }), idleMs: fc.constant(0) })
            .map((rest): Op => ({ ...rest, keys: [streamKey], mode: 'read' }))
        : fc
            .record({ ...base, wait: fc.integer({ min: 2_500, max: 6_000 }), holdMs: fc.integer({ min: 20, max: 200 }), idleMs: fc.integer({ min: 50, max: 400 }) })
            .map((rest): Op => ({ ...rest, keys: [streamKey], fair: true }));
  return fc.sample(fc.array(op, { minLength: count, maxLength: count }), { seed: deriveSeed(seed, 3, app, worker), numRuns: 1 })[0] as Op[];
}

export type FaultKind =
  | 'delay' // proxy: every chunk to one app delayed (often longer than the ttl)
  | 'lostScripts' // the same, slow and fast in turns, while the server's script cache is emptied and partly loaded back again and again (NOSCRIPT for some scripts, as after a failover)
  | 'cut' // proxy: replies held back a little, then every connection cut (ioredis re-sends)
  | 'cutReply' // proxy: again and again, the reply of one semaphore/read acquire lost, then its connection cut
  | 'blackhole' // proxy: nothing forwarded for a while
  | 'restart' // SIGKILL a Redis server (AOF kept), start it again
  | 'pause' // SIGSTOP an app's process past its ttl, then SIGCONT
  | 'freezeReplica' // SIGSTOP the Sentinel replica (waitForReplicas: 1)
  | 'killMaster' // Redlock: SIGKILL one master (minority), start it again later
  | 'hangMaster' // Redlock: SIGSTOP one master (its connections stay open), SIGCONT later
  | 'killMajority'; // Redlock: two of three masters

export interface Fault {
  kind: FaultKind;
  /** ms after the start of the run. */
  at: number;
  durationMs: number;
  /** App (process) index for network and pause faults (-1: every app); server index otherwise. */
  target: number;
  /** delay: latency ms; cut: number of cuts. */
  amount: number;
}

export function faultKinds(topology: TopologyName): Array<[FaultKind, number]> {
  switch (topology) {
    case 'single':
      return [['delay', 3], ['lostScripts', 3], ['cut', 3], ['cutReply', 4], ['blackhole', 1], ['restart', 1], ['pause', 2]];
    case 'redlock':
      return [['killMaster', 4], ['killMajority', 1], ['hangMaster', 2], ['delay', 2], ['lostScripts', 2], ['cut', 2], ['pause', 1]];
    case 'sentinel':
      return [['freezeReplica', 4], ['pause', 1]];
    case 'cluster':
      return [['pause', 1]];
    case 'memory':
      return [];
  }
}

/**
 * The fault plan: faults one after the other (never two at once, so each failure has one
 * explanation), with quiet gaps between them, over `durationMs`. The first second is quiet.
 */
export function faultPlan(topology: TopologyName, seed: number, durationMs: number, apps: number): Fault[] {
  const kinds = faultKinds(topology);
  if (kinds.length === 0) return [];
  const one = fc.record({
    kind: fc.oneof(...kinds.map(([kind, weight]) => ({ weight, arbitrary: fc.constant(kind) }))),
    gap: fc.integer({ min: 300, max: 2_000 }),
    duration: fc.integer({ min: 400, max: 3_000 }),
    target: fc.integer({ min: 0, max: 1_000 }),
    amount: fc.integer({ min: 0, max: 1_000 }),
  });
  const drawn = fc.sample(fc.array(one, { minLength: 60, maxLength: 60 }), { seed: deriveSeed(seed, 2), numRuns: 1 })[0];
  const plan: Fault[] = [];
  let at = 1_000;
  for (const d of drawn) {
    at += d.gap;
    let duration = d.duration;
    let amount = 0;
    let target = d.target % apps;
    switch (d.kind) {
      case 'delay':
      case 'lostScripts':
        amount = [80, 250, 700, 1_200][d.amount % 4]; // half of them longer than most ttls
        break;
      case 'cut':
        amount = 2 + (d.amount % 5);
        duration = Math.max(duration, 1_000);
        break;
      case 'cutReply':
        amount = d.amount; // seeds the hold-back times
        duration = Math.max(duration, 2_000);
        target = -1; // every app
        break;
      case 'pause':
        duration = 700 + (duration % 1_000); // past every short ttl (max 600)
        break;
      case 'freezeReplica':
        duration = 3_000 + 2 * duration; // long enough for fair waiters to be handed the lock inside it
        target = 1;
        break;
      case 'killMaster':
        duration = 1_500 + duration;
        target = d.target % 3;
        break;
      case 'killMajority':
        target = d.target % 3;
        break;
      case 'hangMaster':
        // Often past REDLOCK_HUNG_AFTER_MS, so the apps come to skip the master while it is still stopped.
        duration = 1_500 + (duration % 2_500);
        target = d.target % 3;
        break;
      case 'restart':
        target = 0;
        duration = 200 + (duration % 800);
        break;
      default:
        break;
    }
    if (at + duration > durationMs - 500) break;
    plan.push({ kind: d.kind, at, durationMs: duration, target, amount });
    at += duration;
  }
  return plan;
}

/**
 * The invariants of the safety checker, over a whole recorded history.
 *
 * A history is the JSON events of every client process (call, grant, use, extend, release, end,
 * block, probe) plus the fault windows the parent injected, all on one clock
 * (performance.timeOrigin + performance.now(), the same machine clock in every process).
 *
 * A hold is *valid* from its grant to its last "use" point at which its signal was not aborted and
 * the time was before its `expiresAt`: a lease can only still be valid at t if it was continuously
 * renewed up to then. Overlaps are judged on valid intervals only.
 */
import { PREFIX, REDLOCK_HUNG_AFTER_MS, type TopologyName } from './schedule.js';
import { lockKeyOf } from '../../lib/stores/redis.store.js';

export interface ErrorInfo {
  name: string;
  message: string;
  cause?: string;
  abort?: boolean;
  /** Set when the cause is the library's LeaseRanOutError: the lease and how long the reply took, in ms. */
  lateReply?: { ttl: number; tookMs: number };
}

export type HistoryEvent =
  | { ev: 'call'; id: string; parent?: string; app: number; child: number; worker: number; via: string; keys: string[]; permits?: number; mode?: 'read'; fair?: boolean; ttl: number; wait: number; t: number }
  | { ev: 'grant'; id: string; t: number; fences: Record<string, number>; token: string; exp: number; aborted: boolean }
  | { ev: 'use'; id: string; t: number; exp: number; aborted: boolean }
  | { ev: 'extend'; id: string; t0: number; t: number; ok: boolean; exp?: number; error?: ErrorInfo }
  | { ev: 'release'; id: string; t: number; early?: boolean }
  | { ev: 'abort'; id: string; t: number }
  | { ev: 'end'; id: string; t: number; result: 'ok' | 'null' | 'error'; error?: ErrorInfo }
  | { ev: 'block'; id: string; child: number; start: number; end: number }
  | { ev: 'stall'; child: number; start: number; end: number }
  | { ev: 'probe'; key: string; shape: object; t: number; ok: boolean; error?: ErrorInfo }
  | { ev: 'unhandled'; t: number; error: ErrorInfo }
  | { ev: 'fault'; kind: string; target: number; start: number; end: number; detail?: string }
  | { ev: 'leftover'; port: number; key: string }
  /** The runner's samples: a hold of `key` by `token` on data server `server`, first and last seen. */
  /**
   * A (server, key, token) seen by the hold sampler: `first` and `last` are when the looks that saw
   * it were sent; `firstAnswered` is when the first of them was answered (the token was in Redis by
   * then, so the call that put it there had started).
   */
  | { ev: 'held'; server: number; key: string; token: string; first: number; last: number; firstAnswered?: number }
  | { ev: 'conn'; app: number; child: number; server: number; up: boolean; t: number }
  | { ev: string; [field: string]: unknown };

export interface Call {
  id: string;
  parent?: string;
  app: number;
  child: number;
  worker: number;
  via: string;
  keys: string[];
  permits?: number;
  mode?: 'read';
  fair?: boolean;
  ttl: number;
  wait: number;
  callT: number;
  grant?: { t: number; fences: Record<string, number>; token: string; exp: number; aborted: boolean };
  uses: Array<{ t: number; exp: number; aborted: boolean }>;
  extends: Array<{ t0: number; t: number; ok: boolean; error?: ErrorInfo }>;
  releaseT?: number;
  endT?: number;
  result?: 'ok' | 'null' | 'error';
  error?: ErrorInfo;
  /** Derived: end of the valid interval (undefined: never valid). */
  validEnd?: number;
  /** Derived: keys whose lease this call shares with an ancestor (reentrancy). */
  shared: Set<string>;
}

export interface FaultWindow {
  kind: string;
  target: number;
  start: number;
  end: number;
}

export interface Violation {
  invariant: number;
  title: string;
  message: string;
  /** The calls and faults that show it. */
  calls: Call[];
  faults: FaultWindow[];
}

export interface CheckContext {
  topology: TopologyName;
  /** Agreed permits per semaphore key. */
  agreedPermits: Map<string, number>;
}

/** Both clocks are the same machine clock; this only absorbs rounding (expiresAt is whole ms). */
const EPS = 3;
/** The bound on a single store call in lock.service.ts (MIN_CALL_TIMEOUT_MS). */
const CALL_BOUND = 1_000;
/** Scheduling slack on a loaded 2-core machine: invariant 6 is a safety net, not a timing test. */
const WAIT_SLACK = 2_500;
/** Several poll intervals: how long a waiting writer may take to make itself known. */
const WRITER_SLACK = 1_000;
/** How long a hold may still be seen after its owner's call ended: the release's round trip on a loaded machine. */
const HOLD_SLACK = 1_500;
/**
 * More of it under lostScripts: the second release waits for the answer to an attempt that Redis
 * answered NOSCRIPT and then ran, two round trips of a slow step on a lagging master (2 x (1,200 +
 * 150) ms). A hold the bug leaves behind lasts its whole ttl, well past this.
 */
const LOST_SCRIPTS_SLACK = 3_000;
/** After a fault ends, clients need a moment to reconnect. */
const RECOVERY = 2_500;

export const INVARIANTS: Record<number, string> = {
  1: 'exclusive holds of a key never overlap while both are valid',
  2: 'never more valid holders of a key than their permits',
  3: 'readers, permit holders and a writer never overlap (each kind excludes the others)',
  4: 'fences never repeat per key and increase in real-time order',
  5: 'no lock returned with its lease already over',
  6: 'a wait never outlives its deadline by more than one call bound (+ slack)',
  7: 'only documented errors; "unavailable" only while a fault explains it',
  8: 'writer preference: no reader or permit holder admitted past a waiting writer, no writer starved by them',
  9: 'waitForReplicas: no grant made entirely while the only replica was frozen',
  10: 'nothing left in the store after all clients stopped and leases ran out',
  11: 'a hold in Redis ends with its owner: gone once the call granted it (or, never granted, every call that may have taken it) ended',
};

export function buildCalls(events: HistoryEvent[]): { calls: Call[]; faults: FaultWindow[]; stalls: FaultWindow[]; byId: Map<string, Call> } {
  const byId = new Map<string, Call>();
  const faults: FaultWindow[] = [];
  const stalls: FaultWindow[] = [];
  for (const e of events as Array<HistoryEvent & Record<string, any>>) {
    switch (e.ev) {
      case 'call':
        byId.set(e.id, {
          id: e.id,
          parent: e.parent,
          app: e.app,
          child: e.child,
          worker: e.worker,
          via: e.via,
          keys: e.keys,
          permits: e.permits,
          mode: e.mode,
          fair: e.fair,
          ttl: e.ttl,
          wait: e.wait,
          callT: e.t,
          uses: [],
          extends: [],
          shared: new Set(),
        });
        break;
      case 'grant': {
        const call = byId.get(e.id);
        if (call) {
          call.grant = { t: e.t, fences: e.fences, token: e.token, exp: e.exp, aborted: e.aborted };
          call.uses.push({ t: e.t, exp: e.exp, aborted: e.aborted });
        }
        break;
      }
      case 'use':
        byId.get(e.id)?.uses.push({ t: e.t, exp: e.exp, aborted: e.aborted });
        break;
      case 'extend':
        byId.get(e.id)?.extends.push({ t0: e.t0, t: e.t, ok: e.ok, error: e.error });
        break;
      case 'release': {
        const call = byId.get(e.id);
        if (call && call.releaseT === undefined) call.releaseT = e.t;
        break;
      }
      case 'end': {
        const call = byId.get(e.id);
        if (call) {
          call.endT = e.t;
          call.result = e.result;
          call.error = e.error;
        }
        break;
      }
      case 'block':
        faults.push({ kind: 'block', target: e.child, start: e.start, end: e.end });
        break;
      case 'stall':
        // Measured by the child, not scheduled: kept apart from the faults, it excuses only the
        // timing of that child's own calls (see stalledFor), never an error or another invariant.
        stalls.push({ kind: 'stall', target: e.child, start: e.start, end: e.end });
        break;
      case 'fault':
        faults.push({ kind: e.kind, target: e.target, start: e.start, end: e.end });
        break;
      default:
        break;
    }
  }
  const calls = [...byId.values()];
  for (const call of calls) {
    let validEnd: number | undefined;
    for (const use of call.uses) {
      if (use.aborted || use.t >= use.exp) break; // aborted stays aborted; an expired lease stays expired
      validEnd = use.t;
    }
    call.validEnd = validEnd;
    // Reentrancy: a key an ancestor holds, granted with the ancestor's fence, is the ancestor's lease.
    if (call.grant) {
      for (let a = call.parent ? byId.get(call.parent) : undefined; a; a = a.parent ? byId.get(a.parent) : undefined) {
        if (!a.grant) continue;
        for (const key of call.keys) {
          if (a.grant.fences[key] !== undefined && a.grant.fences[key] === call.grant.fences[key] && call.grant.token === a.grant.token) {
            call.shared.add(key);
          } else if (a.grant.fences[key] !== undefined && a.grant.fences[key] === call.grant.fences[key]) {
            call.shared.add(key); // multi-key handle: token is the new lease's, this key is the ancestor's
          }
        }
      }
    }
  }
  return { calls, faults, stalls, byId };
}

type Kind = 'exclusive' | 'permits' | 'read';
const kindOf = (call: Call): Kind => (call.mode === 'read' ? 'read' : call.permits !== undefined ? 'permits' : 'exclusive');
const sameWorker = (a: Call, b: Call) => a.app === b.app && a.worker === b.worker;
const overlap = (a0: number, a1: number, b0: number, b1: number) => Math.min(a1, b1) - Math.max(a0, b0);
/** A fault under way, or its servers still recovering from it (RECOVERY), at some time in [from, to]. */
const faultNear = (f: FaultWindow, from: number, to: number) => f.start <= to && f.end + RECOVERY >= from;
const valid = (call: Call): call is Call & { grant: NonNullable<Call['grant']>; validEnd: number } =>
  call.grant !== undefined && call.validEnd !== undefined;

export function check(events: HistoryEvent[], context: CheckContext): { violations: Violation[]; calls: Call[]; faults: FaultWindow[] } {
  const { calls, faults, stalls, byId } = buildCalls(events);
  const violations: Violation[] = [];
  const faultsIn = (start: number, end: number) => faults.filter((f) => f.start <= end && f.end >= start);
  const add = (invariant: number, message: string, involved: Call[], window?: [number, number]) => {
    const start = window?.[0] ?? Math.min(...involved.map((c) => c.callT));
    const end = window?.[1] ?? Math.max(...involved.map((c) => c.endT ?? c.validEnd ?? c.callT));
    violations.push({ invariant, title: INVARIANTS[invariant], message, calls: involved, faults: faultsIn(start - 1_000, end + 1_000) });
  };

  // Holds per key and kind.
  const perKey = new Map<string, Call[]>();
  for (const call of calls) {
    if (!call.grant) continue;
    for (const key of call.keys) {
      let list = perKey.get(key);
      if (!list) perKey.set(key, (list = []));
      list.push(call);
    }
  }

  for (const [key, holds] of perKey) {
    const validHolds = holds.filter(valid).sort((a, b) => a.grant.t - b.grant.t);
    const exclusive = validHolds.filter((c) => kindOf(c) === 'exclusive');
    const readers = validHolds.filter((c) => kindOf(c) === 'read');
    const permits = validHolds.filter((c) => kindOf(c) === 'permits' && !c.shared.has(key));

    // 1. Exclusive holds never overlap (different workers: a worker's nested calls are its own).
    for (let i = 0; i < exclusive.length; i++) {
      const a = exclusive[i];
      for (let j = i + 1; j < exclusive.length && exclusive[j].grant.t < a.validEnd; j++) {
        const b = exclusive[j];
        if (sameWorker(a, b)) continue;
        const o = overlap(a.grant.t, a.validEnd, b.grant.t, b.validEnd);
        if (o > EPS) add(1, `key ${JSON.stringify(key)}: exclusive holds ${a.id} and ${b.id} both valid for ${o.toFixed(0)} ms`, [a, b]);
      }
    }
    // 1b. An exclusive call that re-entered a permit or read lease was never exclusive at all.
    for (const call of holds) {
      if (kindOf(call) !== 'exclusive' || !call.shared.has(key)) continue;
      const ancestor = call.parent ? byId.get(call.parent) : undefined;
      if (ancestor && kindOf(ancestor) !== 'exclusive') {
        add(1, `key ${JSON.stringify(key)}: exclusive call ${call.id} was granted by re-entering the ${kindOf(ancestor)} hold ${ancestor.id} (shares its fence ${call.grant?.fences[key]})`, [ancestor, call]);
      }
    }

    // 2. Never more valid holders than permits.
    if (permits.length > 0) {
      for (const a of permits) {
        const active = permits.filter((b) => b === a || (b.grant.t <= a.grant.t && b.validEnd > a.grant.t + EPS));
        const limit = Math.min(...active.map((b) => b.permits as number));
        if (active.length > limit) {
          add(2, `key ${JSON.stringify(key)}: ${active.length} valid holders at once (permits ${active.map((b) => b.permits).join('/')}) when ${a.id} was granted`, active);
        }
      }
    }

    // 3. Readers and writers never overlap; nor do permit holders and writers, nor readers and permit holders.
    const pairs: Array<[typeof readers, typeof exclusive, string, string]> = [
      [readers, exclusive, 'reader', 'writer'],
      [permits, exclusive, 'permit holder', 'writer'],
      [readers, permits, 'reader', 'permit holder'],
    ];
    for (const [shared, others, sharedName, otherName] of pairs) {
      for (const r of shared) {
        for (const w of others) {
          if (sameWorker(r, w)) continue;
          const o = overlap(r.grant.t, r.validEnd, w.grant.t, w.validEnd);
          if (o > EPS) add(3, `key ${JSON.stringify(key)}: ${sharedName} ${r.id} and ${otherName} ${w.id} both valid for ${o.toFixed(0)} ms`, [r, w]);
        }
      }
    }

    // 4. Fences: unique per key, and larger for a call that started after an earlier grant returned.
    const fenced = holds
      .filter((c) => c.grant && !c.shared.has(key) && Number.isFinite(c.grant.fences[key]))
      .sort((a, b) => (a.grant as NonNullable<Call['grant']>).t - (b.grant as NonNullable<Call['grant']>).t);
    const byFence = new Map<number, Call>();
    for (const c of fenced) {
      const fence = c.grant!.fences[key];
      const earlier = byFence.get(fence);
      if (earlier) add(4, `key ${JSON.stringify(key)}: fence ${fence} handed out twice (${earlier.id} and ${c.id})`, [earlier, c]);
      else byFence.set(fence, c);
    }
    let maxSoFar: Call | undefined;
    let cursor = 0;
    const byCall = [...fenced].sort((a, b) => a.callT - b.callT);
    for (const b of byCall) {
      while (cursor < fenced.length && fenced[cursor].grant!.t < b.callT - EPS) {
        const c = fenced[cursor++];
        if (!maxSoFar || c.grant!.fences[key] > maxSoFar.grant!.fences[key]) maxSoFar = c;
      }
      if (maxSoFar && maxSoFar !== b && b.grant!.fences[key] <= maxSoFar.grant!.fences[key]) {
        add(4, `key ${JSON.stringify(key)}: ${b.id} called after ${maxSoFar.id} was granted fence ${maxSoFar.grant!.fences[key]}, but got fence ${b.grant!.fences[key]}`, [maxSoFar, b]);
      }
    }
  }

  /**
   * How long (ms) the call's own process stood still within [start, end]: scheduled pauses and
   * blocks, and stalls it measured itself (overlapping windows counted once). A stall excuses a
   * late grant or a long wait only if it lasted about as long as the lateness it is to explain.
   */
  const stalledFor = (call: Call, start: number, end: number): number => {
    const windows = [...faults.filter((f) => f.kind === 'pause' || f.kind === 'block'), ...stalls]
      .filter((f) => f.target === call.child && f.start <= end && f.end >= start)
      .map((f) => [Math.max(f.start, start), Math.min(f.end, end)] as const)
      .sort((a, b) => a[0] - b[0]);
    let total = 0;
    let coveredUntil = -Infinity;
    for (const [from, to] of windows) {
      const begin = Math.max(from, coveredUntil);
      if (to > begin) total += to - begin;
      coveredUntil = Math.max(coveredUntil, to);
    }
    return total;
  };

  // 5. No lock returned with its lease over. Not judged when the caller's own process stood still
  // (paused, or its event loop blocked by other code) between the lease's start and the grant, for
  // about as long as the grant was late: the library's last look at the clock may come before the
  // stall, and its continuation after it.
  for (const call of calls) {
    if (!call.grant || call.shared.size === call.keys.length) continue;
    const late = call.grant.t - call.grant.exp;
    if (late >= EPS && stalledFor(call, call.grant.exp - call.ttl, call.grant.t) < late - EPS) {
      add(5, `${call.id} was granted with expiresAt ${late.toFixed(0)} ms in the past (signal.aborted ${call.grant.aborted})`, [call]);
    }
  }

  // 6. A wait ends within wait + one call bound (+ slack), plus however long its process stood still.
  for (const call of calls) {
    const waitEnd = call.grant?.t ?? call.endT;
    if (waitEnd === undefined) continue;
    const waited = waitEnd - call.callT;
    const over = waited - (call.wait + CALL_BOUND + WAIT_SLACK);
    if (over > 0 && stalledFor(call, call.callT, waitEnd) < over) {
      add(6, `${call.id} (${call.via}, wait ${call.wait}) waited ${waited.toFixed(0)} ms`, [call]);
    }
  }

  // 7. Documented errors only; LockUnavailableError only while a fault explains it.
  const networkFaults = new Set(['delay', 'lostScripts', 'cut', 'cutReply', 'blackhole']);
  // Redlock: when each app's connection to each master was down (closed, not yet ready again).
  const downs = new Map<number, Array<[number, number]>>();
  {
    const since = new Map<string, number>();
    for (const e of events as Array<Record<string, any>>) {
      if (e.ev !== 'conn') continue;
      const id = `${e.app}/${e.server}`;
      if (!e.up && !since.has(id)) since.set(id, e.t);
      else if (e.up && since.has(id)) {
        downs.set(e.app, [...(downs.get(e.app) ?? []), [since.get(id)!, e.t]]);
        since.delete(id);
      }
    }
    for (const [id, t] of since) {
      const app = Number(id.split('/')[0]);
      downs.set(app, [...(downs.get(app) ?? []), [t, Number.POSITIVE_INFINITY]]);
    }
  }
  /** Most of this app's masters down at one instant within [from, to]. */
  const mostDown = (app: number, from: number, to: number) => {
    const edges = (downs.get(app) ?? [])
      .filter(([s, e]) => s <= to && e >= from)
      .flatMap(([s, e]): Array<[number, number]> => [[Math.max(s, from), 1], [Math.min(e, to), -1]])
      .sort((a, b) => a[0] - b[0] || b[1] - a[1]);
    let down = 0;
    let most = 0;
    for (const [, d] of edges) most = Math.max(most, (down += d));
    return most;
  };
  const explains = (call: Call, start: number, end: number, renewal = false) => {
    // Redlock: a majority of this app's master connections down at once (e.g. one master killed
    // while another, restarted a moment ago, is still being reconnected with ioredis' backoff).
    if (context.topology === 'redlock' && mostDown(call.app, Math.max(start, end - CALL_BOUND) - EPS, end + EPS) >= 2) return true;
    const near = faults.filter((f) => faultNear(f, start, end));
    // One Redlock master down never explains it; a restarted master counts as down until its
    // clients have reconnected (ioredis backs off up to 2 s), so two overlapping kills do. A master
    // killed at any time since the call began may not hold this call's key any more (it expired
    // there while no renewal could reach it; the write-back comes only with a renewal a quorum
    // confirmed): a renewal it refuses counts like one it cannot be reached for.
    const keyLost = faults.filter((f) => f.kind === 'killMaster' && f.start <= end && f.end >= call.callT);
    const mastersDown = new Set([...near, ...keyLost].filter((f) => f.kind === 'killMaster' || f.kind === 'hangMaster').map((f) => f.target));
    if (mastersDown.size >= 2) return true;
    // A hung master (stopped, its connections open) is waited for where its answer is needed to
    // decide, until the apps take it for hung (REDLOCK_HUNG_AFTER_MS, once the others answered)
    // and skip it: a call may fail for want of its answer only around the start of the hang. It
    // confirms no renewal while stopped, so a lease on a bare quorum with it is lost.
    const hung = near.filter((f) => f.kind === 'hangMaster');
    if (renewal && hung.length > 0) return true;
    if (hung.some((f) => f.start + REDLOCK_HUNG_AFTER_MS + RECOVERY >= start)) return true;
    // A lease may be held on a bare quorum (the other master answered busy, or not yet): losing one
    // of those masters loses the quorum of its renewals until the write-back at a confirmed renewal.
    if (renewal && keyLost.length > 0) return true;
    // Likewise for a grant: a master killed while the call ran may have been one of a bare quorum
    // that granted it (the third answered busy, or not in time). Its fences then cannot be raised
    // there, so the grant is not confirmed and is given back.
    if (context.topology === 'redlock' && keyLost.some((f) => f.start >= call.callT - EPS)) return true;
    return near.some((f) => {
      if (networkFaults.has(f.kind) || f.kind === 'pause' || f.kind === 'block') return f.target === call.child || f.target === -1;
      return f.kind === 'restart' || f.kind === 'freezeReplica' || f.kind === 'killMajority';
    });
  };
  /**
   * The admission gate refusing a grant whose reply came back after its lease ran out (documented:
   * a machine too slow for its ttl, no fault needed). Accepted only when the checker's own clock
   * saw the call last at least as long as the library says the reply took, and that was at least
   * the lease: a gate that refused replies which came back in time would still be flagged.
   */
  const lateReplyObserved = (error: ErrorInfo, start: number, end: number) => {
    if (!error.lateReply) return false;
    const { ttl: leaseMs, tookMs: answeredMs } = error.lateReply;
    return answeredMs >= leaseMs && end - start >= answeredMs - EPS;
  };
  for (const call of calls) {
    const parent = call.parent ? byId.get(call.parent) : undefined;
    const checkError = (error: ErrorInfo, start: number, end: number, what: string, renewal = false) => {
      if (error.abort || error.name === 'LockNotAcquiredError' || error.name === 'LockLostError') return;
      if (error.name === 'LockConfigError') {
        // A permits mismatch: this call, or a caller that got in first (even an attempt later rolled back), differs.
        const mismatch =
          call.permits !== undefined &&
          (call.keys.some((key) => context.agreedPermits.get(key) !== call.permits) ||
            calls.some(
              (other) =>
                other.permits !== undefined &&
                other.permits !== call.permits &&
                other.keys.some((key) => call.keys.includes(key)) &&
                other.callT <= end &&
                (other.endT ?? Number.POSITIVE_INFINITY) >= start - 2_000,
            ));
        const nestedOtherShape = parent !== undefined && kindOf(parent) !== kindOf(call);
        if (mismatch || nestedOtherShape) return;
      }
      if (error.name === 'LockUnavailableError' && explains(call, start, end, renewal)) return;
      if (error.name === 'LockUnavailableError' && lateReplyObserved(error, start, end)) return;
      add(7, `${call.id} ${what}: ${error.name}: ${error.message}${error.cause ? ` (cause: ${error.cause})` : ''}`, [call], [start, end]);
    };
    if (call.error) checkError(call.error, call.callT, call.endT ?? call.callT, `${call.via} ${JSON.stringify(call.keys)}`);
    for (const ext of call.extends) if (ext.error) checkError(ext.error, ext.t0, ext.t, 'extend', true);
  }
  for (const e of events as Array<Record<string, any>>) {
    if (e.ev === 'unhandled') {
      violations.push({ invariant: 7, title: INVARIANTS[7], message: `unhandled rejection/exception: ${e.error.name}: ${e.error.message}`, calls: [], faults: [] });
    }
  }

  // 8. Writer preference.
  for (const [key, holds] of perKey) {
    void holds;
    const writers = calls.filter((c) => c.keys.length === 1 && c.keys[0] === key && kindOf(c) === 'exclusive' && c.wait >= 2 * WRITER_SLACK && !c.parent);
    if (writers.length === 0) continue;
    // Shared holds: readers and permit holders both queue behind a waiting writer.
    const readHolds = calls.filter((c) => c.grant && kindOf(c) !== 'exclusive' && c.keys.includes(key) && !c.shared.has(key));
    if (readHolds.length === 0) continue;
    const otherExclusive = (w: Call, from: number, to: number) =>
      calls.some(
        (c) =>
          c !== w &&
          c.grant &&
          kindOf(c) === 'exclusive' &&
          c.keys.includes(key) &&
          c.grant.t <= to &&
          (c.endT ?? Number.POSITIVE_INFINITY) >= from,
      );
    const disturbed = (w: Call, from: number, to: number) =>
      faults.some((f) => f.start <= to && f.end + RECOVERY >= from && (f.target === w.child || f.target === -1 || !['pause', 'block', ...networkFaults].includes(f.kind)));
    for (const w of writers) {
      const waitEnd = w.grant?.t ?? w.endT;
      if (waitEnd === undefined) continue;
      // A reader that called well after the writer began waiting, admitted while the writer still waited.
      for (const r of readHolds) {
        if (sameWorker(r, w)) continue;
        if (r.callT > w.callT + WRITER_SLACK && r.grant!.t < waitEnd - EPS && !otherExclusive(w, w.callT, r.grant!.t) && !disturbed(w, w.callT, r.grant!.t)) {
          add(8, `key ${JSON.stringify(key)}: ${kindOf(r) === 'read' ? 'reader' : 'permit holder'} ${r.id} called ${(r.callT - w.callT).toFixed(0)} ms after writer ${w.id}${w.fair ? ' (fair)' : ''} began waiting and was admitted while it still waited`, [w, r]);
          break;
        }
      }
      // A writer that timed out while only readers (admitted after it began waiting) held the key.
      if (w.error?.name === 'LockNotAcquiredError' && w.endT !== undefined && !otherExclusive(w, w.callT, w.endT) && !disturbed(w, w.callT, w.endT)) {
        const lateWindow: [number, number] = [w.endT - WRITER_SLACK, w.endT];
        const holdingLate = readHolds.filter((r) => r.grant!.t <= lateWindow[1] && (r.endT ?? Number.POSITIVE_INFINITY) >= lateWindow[0]);
        if (holdingLate.length > 0 && holdingLate.every((r) => r.callT > w.callT + WRITER_SLACK)) {
          add(8, `key ${JSON.stringify(key)}: writer ${w.id}${w.fair ? ' (fair)' : ''} timed out after ${(w.endT - w.callT).toFixed(0)} ms while only shared holders admitted after it began waiting held the key`, [w, ...holdingLate.slice(0, 3)]);
        }
      }
    }
  }

  // 9. waitForReplicas: no grant made entirely inside a frozen-replica window.
  for (const f of faults.filter((f) => f.kind === 'freezeReplica')) {
    for (const call of calls) {
      if (!call.grant || call.shared.size === call.keys.length) continue;
      if (call.callT > f.start + 50 && call.grant.t < f.end) {
        add(9, `${call.id} (${call.via}${call.fair ? ', fair' : ''}) was granted with the only replica frozen the whole time`, [call], [f.start, f.end]);
      }
    }
  }

  // 10. Nothing left behind.
  for (const e of events as Array<Record<string, any>>) {
    if (e.ev === 'probe' && !e.ok) {
      violations.push({ invariant: 10, title: INVARIANTS[10], message: `after the run, ${JSON.stringify(e.key)} ${JSON.stringify(e.shape)} could not be taken${e.error ? `: ${e.error.name}: ${e.error.message}` : ''}`, calls: [], faults: [] });
    }
    if (e.ev === 'leftover') {
      violations.push({ invariant: 10, title: INVARIANTS[10], message: `left in Redis (port ${e.port}): ${e.key}`, calls: [], faults: [] });
    }
  }

  // 11. A hold ends with its owner. A token some call was granted: its key is gone once that call
  // ended (its release has run). A token no call was granted (an attempt that failed, timed out or
  // was given back): gone once every call on that key that may have taken it has ended, that is
  // every call that had started when the token was first seen (a later call cannot own it). Each
  // give or take HOLD_SLACK, and LOST_SCRIPTS_SLACK more under lostScripts (a release Redis answers
  // NOSCRIPT still runs, later). A fault under way by then (a paused process, replies held back,
  // connections cut) may hold a release back, but not lose it: the hold must be gone that long
  // after the fault is over. Only a fault that can lose it excuses a hold seen later: its server
  // restarted from a file written before the release (the deleted key comes back).
  const grantedTo = new Map<string, Call[]>();
  for (const call of calls) if (call.grant) grantedTo.set(call.grant.token, [...(grantedTo.get(call.grant.token) ?? []), call]);
  const callsOnKey = new Map<string, Call[]>();
  for (const call of calls) {
    for (const lockKey of call.keys.map((key) => lockKeyOf(PREFIX, key))) callsOnKey.set(lockKey, [...(callsOnKey.get(lockKey) ?? []), call]);
  }
  /** The servers a fault killed or restarted. */
  const victimsOf = (f: FaultWindow): number[] =>
    f.kind === 'restart' || f.kind === 'killMaster' ? [f.target] : f.kind === 'killMajority' ? [f.target, (f.target + 1) % 3] : [];
  /** When a hold whose owners all ended at `ended` must be gone. */
  const goneBy = (ended: number): number => {
    const from = ended - CALL_BOUND;
    let heldBackUntil = ended;
    let slack = HOLD_SLACK;
    for (let moved = true; moved; ) {
      moved = false;
      for (const f of faults) {
        // A server killed or restarted holds back no release elsewhere; on itself, see mayBeLost.
        if (victimsOf(f).length > 0 || !faultNear(f, from, heldBackUntil + slack)) continue;
        if (f.kind === 'lostScripts') {
          if (slack < HOLD_SLACK + LOST_SCRIPTS_SLACK) [slack, moved] = [HOLD_SLACK + LOST_SCRIPTS_SLACK, true];
        } else if (f.end + RECOVERY > heldBackUntil) {
          [heldBackUntil, moved] = [f.end + RECOVERY, true];
        }
      }
    }
    return heldBackUntil + slack;
  };
  const mayBeLost = (server: number, ended: number, last: number) => faults.some((f) => victimsOf(f).includes(server) && faultNear(f, ended - CALL_BOUND, last));
  for (const e of events as Array<Record<string, any>>) {
    if (e.ev !== 'held') continue;
    const owners = grantedTo.get(e.token);
    if (owners) {
      if (owners.some((c) => c.endT === undefined)) continue;
      const ended = Math.max(...owners.map((c) => c.endT as number));
      if (e.last > goneBy(ended) && !mayBeLost(e.server, ended, e.last)) {
        add(11, `${e.key} held by ${owners[0].id}'s token on server ${e.server}, seen ${(e.last - ended).toFixed(0)} ms after that call ended`, owners, [ended, e.last]);
      }
      continue;
    }
    const mayHaveTaken = (callsOnKey.get(e.key) ?? []).filter((c) => c.callT <= (e.firstAnswered ?? e.last) + EPS);
    if (mayHaveTaken.some((c) => c.endT === undefined)) continue;
    const ended = Math.max(Number.NEGATIVE_INFINITY, ...mayHaveTaken.map((c) => c.endT as number));
    if (e.last > goneBy(ended) && !mayBeLost(e.server, ended, e.last)) {
      add(11, `${e.key} held on server ${e.server} by a token no call was granted, seen ${(e.last - ended).toFixed(0)} ms after every call on it that had begun by then ended`, mayHaveTaken.slice(-3), [ended, e.last]);
    }
  }

  return { violations, calls, faults };
}

/** A violation as text: the invariant, the message, and the minimal slice of history that shows it. */
export function describeViolation(v: Violation, t0: number): string {
  const rel = (t: number | undefined) => (t === undefined ? '-' : `${((t - t0) / 1000).toFixed(3)}s`);
  const lines = [`invariant ${v.invariant} (${v.title}): ${v.message}`];
  for (const c of v.calls) {
    const opts = [c.permits !== undefined && `permits ${c.permits}`, c.mode && `mode ${c.mode}`, c.fair && 'fair', `ttl ${c.ttl}`, `wait ${c.wait}`]
      .filter(Boolean)
      .join(', ');
    lines.push(
      `  ${c.id}${c.parent ? ` (nested in ${c.parent})` : ''} app ${c.app} worker ${c.worker}: ${c.via}(${JSON.stringify(c.keys)}, {${opts}}) called ${rel(c.callT)}` +
        (c.grant
          ? `, granted ${rel(c.grant.t)} fences ${JSON.stringify(c.grant.fences)} expiresAt ${rel(c.grant.exp)} aborted ${c.grant.aborted}` +
            `, valid until ${rel(c.validEnd)}, last use ${rel(c.uses.at(-1)?.t)} (expiresAt ${rel(c.uses.at(-1)?.exp)}, aborted ${c.uses.at(-1)?.aborted})` +
            (c.shared.size ? `, shares ${JSON.stringify([...c.shared])} with its ancestor` : '')
          : '') +
        `, ended ${rel(c.endT)} ${c.result ?? '(no end)'}${c.error ? ` ${c.error.name}: ${c.error.message}` : ''}`,
    );
  }
  for (const f of v.faults) lines.push(`  fault ${f.kind} target ${f.target}: ${rel(f.start)} → ${rel(f.end)}`);
  return lines.join('\n');
}

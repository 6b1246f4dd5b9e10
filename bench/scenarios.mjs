/** Scenarios A–F. Each takes an adapter (see adapters.mjs) and returns plain figures. */
import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { counterDelta, counters, median, now, percentile, settledHeap } from './measure.mjs';

export const randomKey = (prefix) => `${prefix}:${randomBytes(8).toString('hex')}`;
export const randomKeys = (prefix, n) => Array.from({ length: n }, () => randomKey(prefix));

// ---------------------------------------------------------------------------------------------
// A: serial acquire+release pairs
// ---------------------------------------------------------------------------------------------

/** One loop over `keys`: acquire then release each. Returns elapsed ms and per-pair latencies (ms). */
export async function serialPairs(adapter, keys) {
  const latencies = new Float64Array(keys.length);
  const start = now();
  for (let i = 0; i < keys.length; i++) {
    const t = now();
    const handle = await adapter.acquire(keys[i]);
    await adapter.release(handle);
    latencies[i] = now() - t;
  }
  return { elapsed: now() - start, latencies };
}

// ---------------------------------------------------------------------------------------------
// B: concurrent loops on distinct keys
// ---------------------------------------------------------------------------------------------

/** `keysPerLoop[i]` is loop i's own keys; all loops run at once. */
export async function concurrentPairs(adapter, keysPerLoop) {
  const latencies = [];
  const start = now();
  await Promise.all(
    keysPerLoop.map(async (keys) => {
      for (const key of keys) {
        const t = now();
        const handle = await adapter.acquire(key);
        await adapter.release(handle);
        latencies.push(now() - t);
      }
    }),
  );
  return { elapsed: now() - start, latencies };
}

// ---------------------------------------------------------------------------------------------
// C: contended single key
// ---------------------------------------------------------------------------------------------

export const C_HOLD_MS = 1;
export const C_OFF_LOCK_MS = 5;
export const C_WAIT_MS = 30_000;

/**
 * `workers` loops on ONE key; each holds it C_HOLD_MS (setTimeout), releases, works C_OFF_LOCK_MS
 * off-lock, asks again; `total` acquisitions in all. Held interval = acquire resolved → release
 * resolved; handoff = previous holder's release resolved → this holder's acquire resolved.
 */
export async function contended(adapter, { workers, total, key, admin }) {
  let tickets = total;
  let inside = 0;
  let overlaps = 0;
  let failures = 0;
  let seq = 0;
  const acquiredAt = [];
  const releasedAt = [];
  const before = admin ? await counters(admin) : undefined;
  const start = now();
  const worker = async () => {
    while (tickets > 0) {
      tickets -= 1;
      let handle;
      try {
        handle = await adapter.acquireWait(key, C_WAIT_MS);
      } catch (error) {
        failures += 1;
        if (failures === 1) console.error(`  ${adapter.name}: acquire failed: ${error?.message ?? error}`);
        continue;
      }
      const i = seq++;
      acquiredAt[i] = now();
      inside += 1;
      if (inside > 1) overlaps += 1;
      await sleep(C_HOLD_MS);
      inside -= 1;
      await adapter.release(handle);
      releasedAt[i] = now();
      await sleep(C_OFF_LOCK_MS);
    }
  };
  await Promise.all(Array.from({ length: workers }, worker));
  const end = Math.max(...releasedAt);
  const wall = end - start;
  const after = admin ? await counters(admin) : undefined;

  // Busy time: union of held intervals (they may touch, the event loop orders replies).
  let busy = 0;
  let coveredUntil = -Infinity;
  const order = acquiredAt.map((_, i) => i).sort((a, b) => acquiredAt[a] - acquiredAt[b]);
  for (const i of order) {
    const from = Math.max(acquiredAt[i], coveredUntil);
    if (releasedAt[i] > from) busy += releasedAt[i] - from;
    coveredUntil = Math.max(coveredUntil, releasedAt[i]);
  }
  let heldSum = 0;
  for (let i = 0; i < seq; i++) heldSum += releasedAt[i] - acquiredAt[i];
  const handoffs = [];
  for (let k = 1; k < order.length; k++) {
    handoffs.push(Math.max(0, acquiredAt[order[k]] - releasedAt[order[k - 1]]));
  }
  const counts = before && after ? counterDelta(before, after) : undefined;
  return {
    workers,
    acquisitions: seq,
    failures,
    overlaps,
    wall,
    acqPerSec: (seq / wall) * 1000,
    busyPct: (busy / wall) * 100,
    meanHeldMs: heldSum / seq,
    handoffP50: percentile(handoffs, 0.5),
    handoffP99: percentile(handoffs, 0.99),
    cmdsPerAcq: counts ? counts.server / seq : NaN,
    reqPerAcq: counts ? counts.client / seq : NaN,
    perCommand: counts ? Object.fromEntries(Object.entries(counts.perCommand).map(([k, v]) => [k, v / seq])) : {},
  };
}

// ---------------------------------------------------------------------------------------------
// D: @WithLock vs withLock
// ---------------------------------------------------------------------------------------------

/**
 * Serial calls on random keys, the forms interleaved call by call (the order rotating), so drift
 * in the machine's speed hits all alike. Each call is timed; returns mean and median µs per call
 * of each form.
 */
export async function decoratorOverhead(forms, { calls }) {
  const names = Object.keys(forms);
  const latencies = Object.fromEntries(names.map((name) => [name, new Float64Array(calls)]));
  const keys = Object.fromEntries(names.map((name) => [name, randomKeys('d', calls)]));
  for (let i = 0; i < calls; i++) {
    for (let j = 0; j < names.length; j++) {
      const name = names[(i + j) % names.length];
      const t = now();
      await forms[name](keys[name][i]);
      latencies[name][i] = now() - t;
    }
  }
  const out = { calls };
  for (const name of names) {
    const values = latencies[name];
    out[name] = { meanUs: (values.reduce((a, b) => a + b, 0) / calls) * 1000, medianUs: median(values) * 1000 };
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// E: many locks held at once
// ---------------------------------------------------------------------------------------------

const E_BATCH = 500;

async function inBatches(items, fn) {
  const out = new Array(items.length);
  for (let i = 0; i < items.length; i += E_BATCH) {
    const slice = items.slice(i, i + E_BATCH);
    const results = await Promise.all(slice.map(fn));
    for (let j = 0; j < results.length; j++) out[i + j] = results[j];
  }
  return out;
}

/**
 * Holds `count` locks with `ttl` at once: heap per held lock (gc'd heap delta / count, right
 * after acquiring all and again after the renewal window), renewals per second over `windowMs`.
 */
export async function manyHeld(adapter, { count, ttl, windowMs, admin, leaseStats }) {
  let lost = 0;
  const onLost = () => (lost += 1);
  // Warm-up at a tenth of the size, so buffers that only grow (command queues) are not counted.
  const warm = await inBatches(randomKeys('e', count / 10), (key) => adapter.hold(key, ttl, onLost));
  await inBatches(warm, (handle) => adapter.releaseHeld(handle));
  lost = 0;

  const keys = randomKeys('e', count);
  const heapBefore = await settledHeap();
  const acquireStart = now();
  let handles = await inBatches(keys, (key) => adapter.hold(key, ttl, onLost));
  const acquireMs = now() - acquireStart;
  const heapHeld = await settledHeap();

  const before = await counters(admin);
  const statsBefore = leaseStats?.();
  const windowStart = now();
  await sleep(windowMs);
  const window = now() - windowStart;
  const after = await counters(admin);
  const statsAfter = leaseStats?.();
  const heapSteady = await settledHeap();

  const t = now();
  const lostAtRelease = await inBatches(handles, (handle) => adapter.releaseHeld(handle));
  lost += lostAtRelease.filter(Boolean).length;
  const releaseMs = now() - t;
  handles = undefined;
  const heapAfter = await settledHeap();
  const counts = counterDelta(before, after);
  const renewals = statsBefore && statsAfter ? statsAfter.renewalsSent - statsBefore.renewalsSent : counts.perCommand.evalsha ?? 0;
  return {
    count,
    ttl,
    window,
    acquireMs,
    bytesPerLock: (heapHeld - heapBefore) / count,
    bytesPerLockSteady: (heapSteady - heapBefore) / count,
    bytesLeftAfterRelease: heapAfter - heapBefore,
    renewalsPerSec: (renewals / window) * 1000,
    serverCmdsPerSec: (counts.server / window) * 1000,
    requestsPerSec: (counts.client / window) * 1000,
    batchesPerSec:
      statsBefore && statsAfter ? ((statsAfter.renewalBatches - statsBefore.renewalBatches) / window) * 1000 : undefined,
    timers: statsAfter?.timers,
    scheduled: statsAfter?.scheduled,
    lost,
    releaseMs,
  };
}

// ---------------------------------------------------------------------------------------------
// F: counting semaphore, one key
// ---------------------------------------------------------------------------------------------

export const F_HOLD_MS = 1;
export const F_OFF_LOCK_MS = 5;
export const F_WAIT_MS = 30_000;

/**
 * `workers` loops on ONE key taking one of `permits` permits (adapter.acquirePermit); each holds
 * it F_HOLD_MS (setTimeout), releases, works F_OFF_LOCK_MS off-lock, asks again; `total`
 * acquisitions in all. Held time = acquire resolved → release resolved (as in C); busy % = sum of
 * held time / (wall × permits). Holders are counted in-process (acquire resolved → just before
 * the release is sent), so `maxHolders` > permits would mean the semaphore let too many in.
 * `freeWhileWaitedPct` is the permit time lost to handoff: the integral over the run of
 * min(permits free, workers waiting), with a permit counted held from acquire resolved to release
 * resolved and a worker waiting from its acquire call to its resolution, / (wall × permits).
 */
export async function semaphoreContended(adapter, { workers, permits, total, key, admin }) {
  let tickets = total;
  let inside = 0;
  let maxHolders = 0;
  let failures = 0;
  let seq = 0;
  let held = 0;
  let end = 0;
  const waits = [];
  /** [time, Δwaiting, Δholding] for the sweep below. */
  const events = [];
  const before = admin ? await counters(admin) : undefined;
  const start = now();
  const worker = async () => {
    while (tickets > 0) {
      tickets -= 1;
      const askedAt = now();
      let handle;
      try {
        handle = await adapter.acquirePermit(key, permits, F_WAIT_MS);
      } catch (error) {
        failures += 1;
        events.push([askedAt, 1, 0], [now(), -1, 0]);
        if (failures === 1) console.error(`  ${adapter.name}: acquire failed: ${error?.message ?? error}`);
        continue;
      }
      const acquiredAt = now();
      seq += 1;
      waits.push(acquiredAt - askedAt);
      inside += 1;
      if (inside > maxHolders) maxHolders = inside;
      await sleep(F_HOLD_MS);
      inside -= 1;
      await adapter.release(handle);
      const releasedAt = now();
      held += releasedAt - acquiredAt;
      events.push([askedAt, 1, 0], [acquiredAt, -1, 1], [releasedAt, 0, -1]);
      if (releasedAt > end) end = releasedAt;
      await sleep(F_OFF_LOCK_MS);
    }
  };
  await Promise.all(Array.from({ length: workers }, worker));
  const wall = end - start;
  const after = admin ? await counters(admin) : undefined;
  const counts = before && after ? counterDelta(before, after) : undefined;
  events.sort((a, b) => a[0] - b[0]);
  let waiting = 0;
  let holding = 0;
  let freeWhileWaited = 0;
  for (let k = 0; k < events.length; k++) {
    const [t, dw, dh] = events[k];
    waiting += dw;
    holding += dh;
    const next = k + 1 < events.length ? events[k + 1][0] : t;
    freeWhileWaited += Math.min(Math.max(0, permits - holding), waiting) * (next - t);
  }
  return {
    workers,
    permits,
    acquisitions: seq,
    failures,
    maxHolders,
    wall,
    acqPerSec: (seq / wall) * 1000,
    busyPct: (held / (wall * permits)) * 100,
    freeWhileWaitedPct: (freeWhileWaited / (wall * permits)) * 100,
    meanHeldMs: seq ? held / seq : NaN,
    waitMean: waits.length ? waits.reduce((a, b) => a + b, 0) / waits.length : NaN,
    waitP50: percentile(waits, 0.5),
    waitP99: percentile(waits, 0.99),
    cmdsPerAcq: counts ? counts.server / seq : NaN,
    reqPerAcq: counts ? counts.client / seq : NaN,
    perCommand: counts ? Object.fromEntries(Object.entries(counts.perCommand).map(([k, v]) => [k, v / seq])) : {},
  };
}

/**
 * The history is one timeline only if every client process reads the same clock. Each process
 * stamps its events with `performance.timeOrigin + performance.now()`, which should agree across
 * processes of one machine, but that is an assumption about Node and the OS, not a measurement.
 * A process whose clock reads a few ms ahead makes its holds look longer than they were, and the
 * checker would blame the library for overlaps that never happened (CI once reported 15 overlaps
 * of 3 to 5 ms on one run, every one of them with the same client process's hold first).
 *
 * So the runner measures each process's clock against its own, as NTP does: it writes "ping",
 * the process answers with its clock reading, and the reading is taken to be from halfway through
 * the round trip. Of several round trips the shortest is kept: its uncertainty is half its length.
 */

export interface ClockSample {
  /** Runner's clock when the ping was written. */
  sent: number;
  /** The process's clock in its answer. */
  answered: number;
  /** Runner's clock when the answer was read. */
  received: number;
}

export interface ClockReading {
  /** The process's clock minus the runner's (ms): positive means it reads ahead. */
  offset: number;
  /** The offset is known to within this many ms (half the shortest round trip). */
  uncertainty: number;
}

/** Below this, an offset is rounding (whole-ms `expiresAt`, ...), which the invariants' EPS absorbs. */
const NEGLIGIBLE_MS = 0.5;

/** The best reading among samples: the one with the shortest round trip. */
export function readClock(samples: ClockSample[]): ClockReading {
  if (samples.length === 0) throw new Error('readClock: no samples');
  let best = samples[0];
  for (const sample of samples) {
    if (sample.received - sample.sent < best.received - best.sent) best = sample;
  }
  const half = (best.received - best.sent) / 2;
  return { offset: best.answered - (best.sent + half), uncertainty: half };
}

/**
 * What to subtract from the process's times to put them on the runner's clock: the measured offset
 * when it is clearly more than its uncertainty and rounding, otherwise nothing (a correction as
 * uncertain as the error it corrects would only add noise).
 */
export function clockCorrection(reading: ClockReading): number {
  return Math.abs(reading.offset) > reading.uncertainty + NEGLIGIBLE_MS ? reading.offset : 0;
}

/** Fields of a history event that are times on the emitting process's clock. */
const TIME_FIELDS = ['t', 't0', 'exp', 'start', 'end'] as const;

/** The event with each of its times moved `by` ms earlier (in place; returns it). */
export function shiftTimes<E extends Record<string, unknown>>(event: E, by: number): E {
  if (by === 0) return event;
  const fields = event as Record<string, unknown>;
  for (const field of TIME_FIELDS) {
    if (typeof fields[field] === 'number') fields[field] = (fields[field] as number) - by;
  }
  return event;
}

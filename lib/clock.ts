import { performance } from 'node:perf_hooks';

/**
 * Monotonic milliseconds for every lease computation: wall-clock jumps (NTP, a VM resumed) must
 * never make a lease look longer than it is. Converted to epoch ms only for `lock.expiresAt`.
 */
export function monotonicNow(): number {
  return performance.now();
}

export function monotonicToEpoch(monotonic: number): number {
  return Math.floor(Date.now() + (monotonic - performance.now()));
}

/**
 * Allowance for clock-rate drift between this process and Redis, as in the Redlock paper:
 * 1% of the TTL plus 2 ms, but never more than a tenth of a tiny TTL.
 */
export function driftAllowance(ttl: number): number {
  return Math.min(Math.floor(ttl * 0.01) + 2, Math.floor(ttl / 10));
}

/** Longest delay a Node timer accepts (2^31 - 1 ms, about 24.8 days); longer ones fire at once. */
export const MAX_TIMER_DELAY_MS = 2_147_483_647;

/** A timer delay clamped to what setTimeout accepts; a timer that fires early just re-arms. */
export function timerDelay(ms: number): number {
  return Math.min(MAX_TIMER_DELAY_MS, Math.max(0, Math.ceil(ms)));
}

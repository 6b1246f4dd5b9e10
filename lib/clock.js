import { performance } from 'node:perf_hooks';
/**
 * Monotonic milliseconds for every lease computation: wall-clock jumps (NTP, a VM resumed) must
 * never make a lease look longer than it is. Converted to epoch ms only for `lock.expiresAt`.
 */
export function monotonicNow() {
    return performance.now();
}
export function monotonicToEpoch(monotonic) {
    return Math.floor(Date.now() + (monotonic - performance.now()));
}
/**
 * Allowance for clock-rate drift between this process and Redis, as in the Redlock paper:
 * 1% of the TTL plus 2 ms, but never more than a tenth of a tiny TTL.
 */
export function driftAllowance(ttl) {
    return Math.min(Math.floor(ttl * 0.01) + 2, Math.floor(ttl / 10));
}
//# sourceMappingURL=clock.js.map
import { AsyncLocalStorage } from 'node:async_hooks';
const innermost = new AsyncLocalStorage();
/**
 * The lock of the innermost `withLock` callback or `@WithLock` method running in this async call
 * chain, or `undefined` outside any. Lets a decorated method watch `currentLock()?.signal` or read
 * its `fence` without changing its signature.
 */
export function currentLock() {
    return innermost.getStore();
}
/** @internal Runs `fn` with `lock` as the current lock. */
export function runWithCurrentLock(lock, fn) {
    return innermost.run(lock, fn);
}
//# sourceMappingURL=current-lock.js.map
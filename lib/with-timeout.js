/** Thrown by {@link withTimeout} when the promise did not settle in time. */
export class TimeoutError extends Error {
    constructor(ms) {
        super(`no reply within ${ms} ms`);
        this.name = 'TimeoutError';
    }
}
/**
 * Bounds a Redis call: every call made on a user's behalf must end by its deadline, whatever the
 * connection does (ioredis queues commands while reconnecting). The timer is cleared on settle.
 */
export function withTimeout(promise, ms) {
    return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new TimeoutError(Math.round(ms))), Math.max(0, ms));
        promise.then((value) => {
            clearTimeout(timer);
            resolve(value);
        }, (error) => {
            clearTimeout(timer);
            reject(error);
        });
    });
}
//# sourceMappingURL=with-timeout.js.map
import { LockKeyError } from './errors.js';
import { MESSAGES } from './lock.messages.js';
/** Longest key accepted, in characters; longer ones are almost always a mistake (a serialized object). */
export const MAX_KEY_LENGTH = 1024;
/** Validates the `keys` argument of acquire/tryAcquire/withLock: a key or a non-empty array of keys. */
export function normalizeKeys(keys) {
    const list = Array.isArray(keys) ? keys : [keys];
    if (list.length === 0)
        throw new LockKeyError(MESSAGES.keysEmpty);
    for (const key of list)
        assertValidKey(key);
    // The same key twice is one key: locking it "twice" in one atomic step means nothing more.
    return [...new Set(list)];
}
export function assertValidKey(key) {
    if (typeof key !== 'string')
        throw new LockKeyError(MESSAGES.keyNotString(key));
    if (key.length === 0)
        throw new LockKeyError(MESSAGES.keyEmpty);
    if (key.length > MAX_KEY_LENGTH)
        throw new LockKeyError(MESSAGES.keyTooLong(key, MAX_KEY_LENGTH));
}
//# sourceMappingURL=lock-keys.js.map
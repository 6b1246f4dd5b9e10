import { LockKeyError } from './errors.js';
import { MESSAGES } from './lock.messages.js';

/** Longest key accepted, in characters; longer ones are almost always a mistake (a serialized object). */
export const MAX_KEY_LENGTH = 1024;

/** Validates the `keys` argument of acquire/tryAcquire/withLock: a key or a non-empty array of keys. */
export function normalizeKeys(keys: unknown): string[] {
  const list = Array.isArray(keys) ? keys : [keys];
  if (list.length === 0) throw new LockKeyError(MESSAGES.keysEmpty);
  for (const key of list) assertValidKey(key);
  // The same key twice is one key: locking it "twice" in one atomic step means nothing more.
  return [...new Set(list as string[])];
}

export function assertValidKey(key: unknown): asserts key is string {
  if (typeof key !== 'string') throw new LockKeyError(MESSAGES.keyNotString(key));
  if (key.length === 0) throw new LockKeyError(MESSAGES.keyEmpty);
  if (key.length > MAX_KEY_LENGTH) throw new LockKeyError(MESSAGES.keyTooLong(key, MAX_KEY_LENGTH));
  // A lone surrogate becomes U+FFFD in UTF-8, so different keys would collide in Redis.
  if (LONE_SURROGATE.test(key)) throw new LockKeyError(MESSAGES.keyMalformedUnicode(key));
}

const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

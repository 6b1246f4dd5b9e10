import { randomBytes } from 'node:crypto';
import { newOwnerToken } from '../owner-token.js';

/** Hex characters of an instance id (64 random bits: unique among the instances sharing a prefix). */
export const INSTANCE_ID_LENGTH = 16;
/** Hex characters of the epoch-ms timestamp in a token (12 hex digits last until the year 10889). */
const TIME_LENGTH = 12;
/** Hex characters of the random part (128 bits, from lib/owner-token.ts). */
const RANDOM_LENGTH = 32;
/**
 * Length of every owner token: `<instance id><acquire start, epoch ms><128 random bits>`, all hex.
 * The release channel's messages ("r<token><key>") are parsed with this length.
 */
export const HOLDER_TOKEN_LENGTH = INSTANCE_ID_LENGTH + TIME_LENGTH + RANDOM_LENGTH;

const HOLDER_TOKEN = new RegExp(`^[0-9a-f]{${HOLDER_TOKEN_LENGTH}}$`);

/** A fresh instance id: 64 random bits as 16 hex characters. */
export function newInstanceId(): string {
  return randomBytes(INSTANCE_ID_LENGTH / 2).toString('hex');
}

/**
 * Makes owner tokens that say which instance holds a lock, and since when it asked for it, with no
 * extra Redis write per acquire: the lock's value (the token) carries both. The last 128 bits are
 * random and are what keeps the token unguessable.
 */
export class HolderTokens {
  private lastMs = -1;
  private lastTime = '';

  constructor(readonly instanceId: string) {}

  next(): string {
    const ms = Date.now();
    if (ms !== this.lastMs) {
      this.lastMs = ms;
      this.lastTime = ms.toString(16).padStart(TIME_LENGTH, '0');
    }
    return this.instanceId + this.lastTime + newOwnerToken();
  }
}

/**
 * What a token says about its holder: the instance id and when that acquire began (epoch ms, so
 * the hold started at or after it). Undefined for a token of another shape (e.g. written by an
 * earlier version of the library, whose tokens were 128 random bits only).
 */
export function parseHolderToken(token: string): { instanceId: string; since: number } | undefined {
  if (!HOLDER_TOKEN.test(token)) return undefined;
  return {
    instanceId: token.slice(0, INSTANCE_ID_LENGTH),
    since: parseInt(token.slice(INSTANCE_ID_LENGTH, INSTANCE_ID_LENGTH + TIME_LENGTH), 16),
  };
}

import { randomFillSync } from 'node:crypto';

const TOKEN_BYTES = 16;
/** Random bytes are drawn in blocks: one CSPRNG call per 256 tokens instead of one per acquire. */
const POOL_TOKENS = 256;
const pool = Buffer.alloc(TOKEN_BYTES * POOL_TOKENS);
let offset = pool.length;

/** A fresh owner token: 128 bits from the system CSPRNG, as 32 hex characters. Never reused. */
export function newOwnerToken(): string {
  if (offset === pool.length) {
    randomFillSync(pool);
    offset = 0;
  }
  const token = pool.toString('hex', offset, offset + TOKEN_BYTES);
  offset += TOKEN_BYTES;
  return token;
}

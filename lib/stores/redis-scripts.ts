/**
 * Lua scripts of the Redis store, registered with ioredis `defineCommand` (EVALSHA, transparently
 * reloaded after a Redis restart wipes the script cache). Each runs atomically, so "check the owner,
 * then act" can never interleave with another client.
 *
 * Key layout per user key K: the lock `<prefix>{K}` holds the owner token with a PX lease; the
 * fence counter `<prefix>{K}:fence` never expires, so every new holder's fence is larger than any
 * earlier one's. The braces make both hash to the same Redis Cluster slot.
 */

/**
 * KEYS[1..n] lock keys, KEYS[n+1..2n] their fence keys; ARGV[1] token, ARGV[2] ttl ms.
 * All or nothing: nothing is written unless every lock key is free.
 * Returns {1, fence1, ..., fenceN} or {0, index of the busy key, its PTTL}.
 */
export const ACQUIRE_SCRIPT = `
local n = #KEYS / 2
for i = 1, n do
  local pttl = redis.call('PTTL', KEYS[i])
  if pttl ~= -2 then
    return {0, i, pttl}
  end
end
local reply = {1}
for i = 1, n do
  redis.call('SET', KEYS[i], ARGV[1], 'PX', ARGV[2])
  reply[i + 1] = redis.call('INCR', KEYS[n + i])
end
return reply
`;

/**
 * KEYS lock keys; ARGV[1] token, ARGV[2] ttl ms.
 * Renews only if every key is still ours; 1 renewed, 0 lost (the caller treats the lease as lost).
 */
export const EXTEND_SCRIPT = `
for i = 1, #KEYS do
  if redis.call('GET', KEYS[i]) ~= ARGV[1] then
    return 0
  end
end
for i = 1, #KEYS do
  redis.call('PEXPIRE', KEYS[i], ARGV[2])
end
return 1
`;

/**
 * KEYS lock keys; ARGV[1] token, ARGV[2] release channel, ARGV[3..] the user keys (for the message).
 * Deletes only keys still owned by the token and publishes each release so waiters wake at once.
 * Returns how many keys were released.
 */
export const RELEASE_SCRIPT = `
local released = 0
for i = 1, #KEYS do
  if redis.call('GET', KEYS[i]) == ARGV[1] then
    redis.call('DEL', KEYS[i])
    redis.call('PUBLISH', ARGV[2], ARGV[i + 2])
    released = released + 1
  end
end
return released
`;

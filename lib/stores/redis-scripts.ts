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
 * KEYS[1..n] lock keys, KEYS[n+1..2n] their fence keys, KEYS[2n+1..3n] their "wanted" markers;
 * ARGV[1] token, ARGV[2] ttl ms, ARGV[3] how long to mark a busy key as wanted (0: the caller
 * will not wait). All or nothing: nothing is written unless every lock key is free.
 * Returns {1, fence1, ..., fenceN} or {0, index of the busy key, its PTTL}.
 */
export const ACQUIRE_SCRIPT = `
local n = #KEYS / 3
for i = 1, n do
  local pttl = redis.call('PTTL', KEYS[i])
  if pttl ~= -2 then
    if tonumber(ARGV[3]) > 0 then
      redis.call('SET', KEYS[2 * n + i], '1', 'PX', ARGV[3])
    end
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
 * KEYS[1..n] lock keys, KEYS[n+1..2n] their "wanted" markers; ARGV[1] token, ARGV[2] release
 * channel, ARGV[3..] the user keys (for the message).
 * Deletes only keys still owned by the token. A key someone is waiting for (its marker, refreshed
 * by every waiting attempt, still exists) is announced as "r<token><key>" so waiters wake at once;
 * the token lets a Redlock subscriber count one release heard from several masters once. A key
 * nobody waits for is not announced, so releases cost the other processes nothing.
 * Returns how many keys were released.
 */
export const RELEASE_SCRIPT = `
local n = #KEYS / 2
local released = 0
for i = 1, n do
  if redis.call('GET', KEYS[i]) == ARGV[1] then
    redis.call('DEL', KEYS[i])
    if redis.call('EXISTS', KEYS[n + i]) == 1 then
      redis.call('PUBLISH', ARGV[2], 'r' .. ARGV[1] .. ARGV[i + 2])
    end
    released = released + 1
  end
end
return released
`;

/*
 * Fair mode. Per key, a FIFO list `<prefix>{K}:queue` of waiters and a sorted set
 * `<prefix>{K}:waiting` of the same entries scored by the (Redis-clock) time after which a waiter
 * that stopped refreshing counts as gone. An entry is "<token>:<ttl>", so a release can grant the
 * lock to the head waiter directly, with that waiter's own ttl, and announce it: the waiter then
 * holds the lock without another round trip.
 */

/** Shared Lua: drops queue heads whose waiters stopped refreshing (crashed or gave up). */
const PRUNE_GONE_WAITERS = `
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
while true do
  local head = redis.call('LINDEX', KEYS[3], 0)
  if not head then break end
  local gone_at = redis.call('ZSCORE', KEYS[4], head)
  if gone_at and tonumber(gone_at) > now then break end
  redis.call('LPOP', KEYS[3])
  redis.call('ZREM', KEYS[4], head)
end
`;

/**
 * Shared Lua, run right after the lock key was deleted: grants the lock to the first waiter still
 * present (with its own ttl and a new fence) and announces "g<token><fence>:<key>", or announces a
 * plain release "r<releasing token><key>" when nobody is queued.
 */
function handOver(channel: string, userKey: string): string {
  // ARGV[1] is always the releasing token.
  return `
${PRUNE_GONE_WAITERS}
local head = redis.call('LPOP', KEYS[3])
if head then
  redis.call('ZREM', KEYS[4], head)
  local separator = string.find(head, ':', 1, true)
  local token = string.sub(head, 1, separator - 1)
  redis.call('SET', KEYS[1], token, 'PX', string.sub(head, separator + 1))
  local fence = redis.call('INCR', KEYS[2])
  redis.call('PUBLISH', ${channel}, 'g' .. token .. fence .. ':' .. ${userKey})
else
  redis.call('PUBLISH', ${channel}, 'r' .. ARGV[1] .. ${userKey})
end`;
}

/**
 * KEYS[1] lock, KEYS[2] fence, KEYS[3] queue, KEYS[4] waiting; ARGV[1] token, ARGV[2] ttl,
 * ARGV[3] how long the waiter counts as present without refreshing (ms).
 * The lock goes to the caller only if it is free and nobody queued before the caller.
 * Returns {1, fence}, {1, fence, 1} when a release had already granted it to this token, or {0, 1, PTTL}
 * after queueing (or refreshing) the caller.
 */
export const FAIR_ACQUIRE_SCRIPT = `
${PRUNE_GONE_WAITERS}
local entry = ARGV[1] .. ':' .. ARGV[2]
local holder = redis.call('GET', KEYS[1])
if holder == ARGV[1] then
  return {1, tonumber(redis.call('GET', KEYS[2])), 1}
end
if not holder then
  local head = redis.call('LINDEX', KEYS[3], 0)
  if (not head) or head == entry then
    if head then
      redis.call('LPOP', KEYS[3])
      redis.call('ZREM', KEYS[4], entry)
    end
    redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
    return {1, redis.call('INCR', KEYS[2])}
  end
end
if redis.call('ZADD', KEYS[4], now + tonumber(ARGV[3]), entry) == 1 then
  redis.call('RPUSH', KEYS[3], entry)
end
redis.call('PEXPIRE', KEYS[3], tonumber(ARGV[3]) * 2)
redis.call('PEXPIRE', KEYS[4], tonumber(ARGV[3]) * 2)
return {0, 1, redis.call('PTTL', KEYS[1])}
`;

/**
 * KEYS[1] lock, KEYS[2] fence, KEYS[3] queue, KEYS[4] waiting; ARGV[1] token, ARGV[2] channel,
 * ARGV[3] user key. Releases if owned and hands the lock straight to the first waiter still
 * present, announcing "g<token><fence>:<key>"; with nobody queued it announces a plain release.
 * Returns 1 if released, 0 if the lock was not ours.
 */
export const FAIR_RELEASE_SCRIPT = `
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return 0
end
redis.call('DEL', KEYS[1])
${handOver('ARGV[2]', 'ARGV[3]')}
return 1
`;

/**
 * KEYS as above; ARGV[1] token, ARGV[2] ttl, ARGV[3] channel, ARGV[4] user key.
 * A fair waiter gives up: it leaves the queue, and if a release granted it the lock meanwhile,
 * passes the lock on as a release would. Returns 1 if it had been granted the lock.
 */
export const FAIR_LEAVE_SCRIPT = `
local entry = ARGV[1] .. ':' .. ARGV[2]
redis.call('LREM', KEYS[3], 0, entry)
redis.call('ZREM', KEYS[4], entry)
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return 0
end
redis.call('DEL', KEYS[1])
${handOver('ARGV[3]', 'ARGV[4]')}
return 1
`;

/**
 * Redlock: KEYS fence keys; ARGV the fence each must reach. Raises every counter to at least the
 * fence just handed out, so the next holder's quorum (which overlaps this one) counts above it.
 */
export const RAISE_FENCES_SCRIPT = `
for i = 1, #KEYS do
  local current = tonumber(redis.call('GET', KEYS[i]) or '0')
  if current < tonumber(ARGV[i]) then
    redis.call('SET', KEYS[i], ARGV[i])
  end
end
return 1
`;

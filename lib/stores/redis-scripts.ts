/**
 * Lua scripts of the Redis store, registered with ioredis `defineCommand` (EVALSHA, transparently
 * reloaded after a Redis restart wipes the script cache). Each runs atomically, so "check the owner,
 * then act" can never interleave with another client.
 *
 * Key layout per user key K: the lock `<prefix>{K}` holds the owner token with a PX lease; the
 * fence counter `<prefix>{K}:fence` never expires, so every new holder's fence is larger than any
 * earlier one's. The braces make both hash to the same Redis Cluster slot.
 */

/** Shared Lua: Redis server time in ms, as `now`. */
const SERVER_NOW = `
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
`;

/**
 * KEYS[1..n] lock keys, KEYS[n+1..2n] their fence keys, KEYS[2n+1..3n] their "wanted" markers,
 * KEYS[3n+1..4n] their readers sets, KEYS[4n+1..5n] their "writer waiting" markers;
 * ARGV[1] token, ARGV[2] ttl ms, ARGV[3] how long to mark a busy key as wanted (0: the caller
 * will not wait). All or nothing: nothing is written unless every lock key is free of other
 * holders and of readers (or already held by this token: an attempt re-sent by ioredis after a
 * lost reply must not find itself busy). A writer that finds readers marks itself waiting, so new
 * readers queue behind it.
 * Returns {1, fence1, ..., fenceN} or {0, index of the busy key, ms until it may be free}.
 */
export const ACQUIRE_SCRIPT = `
local n = #KEYS / 5
local announce = tonumber(ARGV[3])
for i = 1, n do
  local holder = redis.call('GET', KEYS[i])
  if holder and holder ~= ARGV[1] then
    if announce > 0 then
      redis.call('SET', KEYS[2 * n + i], '1', 'PX', ARGV[3])
    end
    return {0, i, redis.call('PTTL', KEYS[i])}
  end
  local readers = KEYS[3 * n + i]
  if not holder and redis.call('EXISTS', readers) == 1 then
    ${SERVER_NOW}
    redis.call('ZREMRANGEBYSCORE', readers, '-inf', now)
    local first = redis.call('ZRANGE', readers, 0, 0, 'WITHSCORES')
    if first[1] then
      if announce > 0 then
        redis.call('SET', KEYS[2 * n + i], '1', 'PX', ARGV[3])
        redis.call('SET', KEYS[4 * n + i], '1', 'PX', ARGV[3])
      end
      return {0, i, tonumber(first[2]) - now}
    end
  end
end
local reply = {1}
for i = 1, n do
  -- Already ours can only mean this very attempt was re-sent after a lost reply (tokens are never
  -- reused): answer as the first run did, without a new fence.
  local mine = redis.call('GET', KEYS[i]) == ARGV[1]
  redis.call('SET', KEYS[i], ARGV[1], 'PX', ARGV[2])
  redis.call('DEL', KEYS[4 * n + i])
  if mine then
    reply[i + 1] = tonumber(redis.call('GET', KEYS[n + i]))
  else
    reply[i + 1] = redis.call('INCR', KEYS[n + i])
  end
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
 * KEYS[1] lock, KEYS[2] fence, KEYS[3] queue, KEYS[4] waiting, KEYS[5] readers; ARGV[1] token,
 * ARGV[2] ttl, ARGV[3] how long the waiter counts as present without refreshing (ms).
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
-- Readers of a read-write lock (KEYS[5]) exclude a writer, fair or not.
if not holder and redis.call('EXISTS', KEYS[5]) == 1 then
  redis.call('ZREMRANGEBYSCORE', KEYS[5], '-inf', now)
  if redis.call('ZCARD', KEYS[5]) > 0 then
    holder = 'readers'
  end
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

/*
 * Counting semaphores. Per user key K: a sorted set `<prefix>{K}:permits` of holder tokens scored
 * by lease expiry in Redis server time (so clients with skewed clocks can neither steal nor lose
 * permits), the agreed limit `<prefix>{K}:limit`, and the same fence counter and "wanted" marker
 * as an exclusive lock. Bookkeeping keys expire with their longest lease.
 */


/**
 * KEYS per user key i: [4i-3] permits set, [4i-2] limit, [4i-1] fence, [4i] wanted marker;
 * ARGV[1] token, ARGV[2] ttl, ARGV[3] permits, ARGV[4] how long to mark a full key as wanted.
 * All or nothing over the keys. Returns {1, fence...}, {0, i, ms until its first permit frees},
 * or {-1, i, limit in use} when the key's holders agreed on another number of permits.
 */
export const SEMAPHORE_ACQUIRE_SCRIPT = `
${SERVER_NOW}
local n = #KEYS / 4
local permits = tonumber(ARGV[3])
for i = 1, n do
  local set = KEYS[4 * i - 3]
  redis.call('ZREMRANGEBYSCORE', set, '-inf', now)
  local holders = redis.call('ZCARD', set)
  if redis.call('ZSCORE', set, ARGV[1]) then
    holders = 0 -- a re-sent attempt of a holder that already got its permit
  end
  local limit = tonumber(redis.call('GET', KEYS[4 * i - 2]) or '0')
  if holders > 0 and limit > 0 and limit ~= permits then
    return {-1, i, limit}
  end
  if holders >= permits then
    if tonumber(ARGV[4]) > 0 then
      redis.call('SET', KEYS[4 * i], '1', 'PX', ARGV[4])
    end
    local first = redis.call('ZRANGE', set, 0, 0, 'WITHSCORES')
    return {0, i, tonumber(first[2]) - now}
  end
end
local reply = {1}
local ttl = tonumber(ARGV[2])
for i = 1, n do
  local set = KEYS[4 * i - 3]
  local mine = redis.call('ZSCORE', set, ARGV[1])
  redis.call('ZADD', set, now + ttl, ARGV[1])
  redis.call('SET', KEYS[4 * i - 2], permits)
  if redis.call('PTTL', set) < ttl then
    redis.call('PEXPIRE', set, ttl)
    redis.call('PEXPIRE', KEYS[4 * i - 2], ttl)
  end
  if mine then
    reply[i + 1] = tonumber(redis.call('GET', KEYS[4 * i - 1]))
  else
    reply[i + 1] = redis.call('INCR', KEYS[4 * i - 1])
  end
end
return reply
`;

/**
 * KEYS permits sets; ARGV[1] token, ARGV[2] ttl. Renews the token's permit in every set if it
 * still holds one everywhere (an expired permit is gone for good). 1 renewed, 0 lost.
 */
export const SEMAPHORE_EXTEND_SCRIPT = `
${SERVER_NOW}
for i = 1, #KEYS do
  local expiry = redis.call('ZSCORE', KEYS[i], ARGV[1])
  if not expiry or tonumber(expiry) <= now then
    return 0
  end
end
local ttl = tonumber(ARGV[2])
for i = 1, #KEYS do
  redis.call('ZADD', KEYS[i], 'XX', now + ttl, ARGV[1])
  if redis.call('PTTL', KEYS[i]) < ttl then
    redis.call('PEXPIRE', KEYS[i], ttl)
  end
end
return 1
`;

/**
 * KEYS[1..n] permits sets, KEYS[n+1..2n] wanted markers; ARGV[1] token, ARGV[2] channel,
 * ARGV[3..] user keys. Gives the token's permits back, announcing them to waiters if any.
 */
export const SEMAPHORE_RELEASE_SCRIPT = `
local n = #KEYS / 2
local released = 0
for i = 1, n do
  if redis.call('ZREM', KEYS[i], ARGV[1]) == 1 then
    released = released + 1
    if redis.call('EXISTS', KEYS[n + i]) == 1 then
      redis.call('PUBLISH', ARGV[2], 'r' .. ARGV[1] .. ARGV[i + 2])
    end
  end
end
return released
`;

/*
 * Read-write locks. Readers of user key K share `<prefix>{K}:readers`, a sorted set of tokens
 * scored by lease expiry (Redis time); the writer is the ordinary exclusive lock `<prefix>{K}`.
 */

/**
 * KEYS per user key i: [5i-4] lock, [5i-3] readers set, [5i-2] writer-waiting marker, [5i-1] fence,
 * [5i] wanted marker; ARGV[1] token, ARGV[2] ttl, ARGV[3] how long to mark a busy key as wanted.
 * A reader gets in unless a writer holds the key or is waiting for it. All or nothing.
 * Returns {1, fence...} or {0, i, ms until it may be free}.
 */
export const READ_ACQUIRE_SCRIPT = `
${SERVER_NOW}
local n = #KEYS / 5
for i = 1, n do
  local readers = KEYS[5 * i - 3]
  if not redis.call('ZSCORE', readers, ARGV[1]) then
    local writer = redis.call('PTTL', KEYS[5 * i - 4])
    local waiting = redis.call('PTTL', KEYS[5 * i - 2])
    if writer ~= -2 or waiting ~= -2 then
      if tonumber(ARGV[3]) > 0 then
        redis.call('SET', KEYS[5 * i], '1', 'PX', ARGV[3])
      end
      return {0, i, math.max(writer, waiting)}
    end
  end
end
local reply = {1}
local ttl = tonumber(ARGV[2])
for i = 1, n do
  local readers = KEYS[5 * i - 3]
  local mine = redis.call('ZSCORE', readers, ARGV[1])
  redis.call('ZREMRANGEBYSCORE', readers, '-inf', now)
  redis.call('ZADD', readers, now + ttl, ARGV[1])
  if redis.call('PTTL', readers) < ttl then
    redis.call('PEXPIRE', readers, ttl)
  end
  if mine then
    reply[i + 1] = tonumber(redis.call('GET', KEYS[5 * i - 1]))
  else
    reply[i + 1] = redis.call('INCR', KEYS[5 * i - 1])
  end
end
return reply
`;

import { INSTANCE_ID_LENGTH } from '../instance/holder-token.js';

/**
 * Lua scripts of the Redis store, registered with ioredis `defineCommand` (EVALSHA, transparently
 * reloaded after a Redis restart wipes the script cache). Each runs atomically, so "check the owner,
 * then act" can never interleave with another client.
 *
 * Key layout per user key K: the lock `<prefix>{K}` holds `<owner token>:<fence>` with a PX lease
 * (the fence is kept with the hold, so an attempt re-sent after a lost reply answers with its own
 * fence). Fences come from a bounded set of shared counters that never expire: one per prefix on a
 * single Redis (`<prefix>fences`), one per hash slot on a Cluster (`<prefix>fences{<tag>}`, the
 * tag chosen so the counter shares the lock key's slot). A counter shared by several keys only
 * ever grows, so each key still sees strictly increasing fences. Versions before 0.2 kept one
 * counter per key, `<prefix>{K}:fence`: while such a legacy counter exists, a new fence is also
 * above it and written back to it (see next_fence), so nothing handed out earlier is shadowed.
 */

/**
 * Shared Lua: `next_fence(counter, legacy, check_legacy)`: INCR of the shared counter, raised
 * above the key's legacy per-key counter when one exists (and the counter raised with it, so it
 * stays the maximum); the legacy counter is bumped to the new fence, so an instance of an earlier
 * version, which INCRs it, stays above every fence handed out here. `check_legacy` false means the
 * caller already knows the legacy counter does not exist.
 */
const NEXT_FENCE = `
local function next_fence(counter, legacy, check_legacy)
  local fence = redis.call('INCR', counter)
  if check_legacy then
    local old = redis.call('GET', legacy)
    if old then
      old = tonumber(old)
      if old >= fence then
        fence = old + 1
        redis.call('SET', counter, fence)
      end
      redis.call('SET', legacy, fence)
    end
  end
  return fence
end
`;

/**
 * Shared Lua on exclusive lock values `<token>:<fence>[:w]`, and on the "wanted" marker.
 * `mark_wanted(marker, ms)`: (re)sets a key's "wanted" marker for at least `ms` (never shorter
 * than it already lasts). Its value names who waits:
 * the instance id its waiters' tokens start with (ARGV[1] is the caller's token in every script
 * that marks), or '*' once waiters of more than one instance marked it. A release hands the key to
 * its own process's waiter only while no other instance waits (RELEASE_TO_SUCCESSOR_SCRIPT).
 * `fence_if_mine(value, token)`: the
 * fence kept in the value if `token` holds it (the value starts with exactly `<token>:`), else nil.
 * `flag_wanted(lock, value)`: appends `:w` ("someone waits for this key") to the current holder's
 * value, keeping its expiry, so its release announces itself without looking up the marker key.
 * Values of another layout (a plain token, written by versions before 0.2) are left untouched.
 */
const LOCK_VALUE = `
local function mark_wanted(marker, ms)
  local by = string.sub(ARGV[1], 1, ${INSTANCE_ID_LENGTH})
  local keep = tonumber(ms)
  local current = redis.call('GET', marker)
  if current then
    if current ~= by then by = '*' end
    -- Never shortened: another waiter's mark lasts as long as that waiter asked.
    keep = math.max(keep, redis.call('PTTL', marker))
  end
  redis.call('SET', marker, by, 'PX', keep)
end
local function fence_if_mine(value, token)
  if value and string.sub(value, 1, #token + 1) == token .. ':' then
    return tonumber(string.match(value, '^%d+', #token + 2))
  end
  return nil
end
local function flag_wanted(lock, value)
  if value and string.find(value, ':', 1, true) and string.sub(value, -2) ~= ':w' then
    local ttl = redis.call('PTTL', lock)
    if ttl > 0 then
      redis.call('SET', lock, value .. ':w', 'PX', ttl)
    end
  end
end
`;

/** Shared Lua: Redis server time in ms, as `now`. */
const SERVER_NOW = `
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
`;

/**
 * Shared Lua: `server_now()` (Redis time in ms, read once per script) and `live_until(set)`: the
 * earliest lease expiry among a sorted set's live members (scored by expiry), or nil when none is
 * live. Read-only, so a writer can look at shared holders without owning their bookkeeping.
 */
const SHARED_HOLDERS = `
local now_ms
local function server_now()
  if not now_ms then
    local clock = redis.call('TIME')
    now_ms = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
  end
  return now_ms
end
local function live_until(set)
  if redis.call('EXISTS', set) == 0 then return nil end
  local first = redis.call('ZRANGEBYSCORE', set, '(' .. server_now(), '+inf', 'WITHSCORES', 'LIMIT', 0, 1)
  if first[1] then return tonumber(first[2]) end
  return nil
end
`;

/**
 * Shared Lua for waiters queued for a handoff: `queue_me(queue, waiting, queued_by, presence, attempt)`
 * adds (or refreshes) the caller's entry "<token>:<ttl>" (ARGV[1], ARGV[2]), recording the attempt
 * that created it; `leave_queue(queue, waiting, queued_by)` takes it out. queue_me needs server_now().
 */
const QUEUE_ME = `
local function queue_me(queue, waiting, queued_by, presence, attempt)
  local entry = ARGV[1] .. ':' .. ARGV[2]
  if redis.call('ZADD', waiting, server_now() + tonumber(presence), entry) == 1 then
    redis.call('RPUSH', queue, entry)
    redis.call('HSET', queued_by, entry, attempt)
  end
  local keep = tonumber(presence) * 2
  redis.call('PEXPIRE', queue, keep)
  redis.call('PEXPIRE', waiting, keep)
  redis.call('PEXPIRE', queued_by, keep)
end
local function leave_queue(queue, waiting, queued_by)
  local entry = ARGV[1] .. ':' .. ARGV[2]
  if redis.call('ZREM', waiting, entry) == 1 then
    redis.call('LREM', queue, 0, entry)
    redis.call('HDEL', queued_by, entry)
  end
end
`;

/**
 * Shared Lua: `announce_grant(channel, token, fence, attempt, user_key)` publishes that a release
 * handed `token` the lock (or a permit) and returns the message, which the releasing script also
 * returns: the releasing client can then hand the grant to a waiter of its own without waiting for
 * the message. "h<token><fence>:<attempt>:<key>" names the waiter's attempt that queued it (the
 * grant happened after that attempt ran); "g<token><fence>:<key>" is for an entry queued by an
 * earlier version, which recorded no attempt (the waiter asks again).
 */
const ANNOUNCE_GRANT = `
local function announce_grant(channel, token, fence, attempt, user_key)
  local message
  if attempt then
    message = 'h' .. token .. fence .. ':' .. attempt .. ':' .. user_key
  else
    message = 'g' .. token .. fence .. ':' .. user_key
  end
  redis.call('PUBLISH', channel, message)
  return message
end
`;

/**
 * Shared Lua for holds kept in a sorted set (permits, readers): each set has a companion hash
 * `<set>:holds` of token -> fence (and, for permits, the agreed `limit`). The fence is stored with
 * the hold so that an attempt re-sent after a lost reply answers with its own fence, never "the
 * counter now". The hash lives exactly as long as its set (same TTL, deleted with the last member),
 * so nothing it holds outlives the holds that need it.
 */
const SORTED_HOLDS = `
local function prune(set, holds, now)
  local expired = redis.call('ZRANGEBYSCORE', set, '-inf', now)
  for _, member in ipairs(expired) do
    redis.call('ZREM', set, member)
    redis.call('HDEL', holds, member)
  end
  if #expired > 0 and redis.call('EXISTS', set) == 0 then
    redis.call('DEL', holds)
  end
end
local function keep_alive(set, holds, ttl)
  local keep = redis.call('PTTL', set)
  if keep < ttl then
    keep = ttl
    redis.call('PEXPIRE', set, keep)
  end
  redis.call('PEXPIRE', holds, keep)
end
local function hold_in(set, holds, counter, legacy, token, now, ttl, held)
  -- held: what the caller already read of the token's fence in the holds hash (false: none);
  -- nil when it did not look.
  local fence = held
  if fence == nil then fence = redis.call('HGET', holds, token) end
  if fence then
    fence = tonumber(fence)
  else
    fence = next_fence(counter, legacy, true)
    redis.call('HSET', holds, token, fence)
  end
  redis.call('ZADD', set, now + ttl, token)
  return fence
end
`;

/**
 * Exclusive lock. KEYS per user key i (7 each, all in the key's Cluster slot): [7i-6] lock,
 * [7i-5] shared fence counter, [7i-4] legacy per-key fence counter, [7i-3] "wanted" marker,
 * [7i-2] readers set, [7i-1] "writer waiting" marker, [7i] permits set; ARGV[1] token, ARGV[2] ttl
 * ms, ARGV[3] how long to mark a busy key as wanted (0: the caller will not wait).
 * All or nothing: nothing is written unless every key is free of other holders of any kind
 * (exclusive, readers, permits), or already held by this token: an attempt re-sent by ioredis
 * after a lost reply must not find itself busy, and answers with the fence kept in the lock's
 * value. A writer kept out by shared holders marks itself waiting, so new readers and permit
 * holders queue behind it. A busy attempt marks the key wanted (the marker key, which outlives
 * the hold, and a `:w` flag on the holder's value, read by its release); a grant made while the
 * marker exists carries the flag. One EXISTS over the legacy counter, wanted marker, readers,
 * writer-waiting marker and permits settles the common case (none of them: a free key, nobody
 * waiting) in one command.
 * Returns {1, fence1, ..., fenceN} or {0, index of the busy key, ms until it may be free}.
 */
export const ACQUIRE_SCRIPT = `
local single = #KEYS == 7
local first_holder
if single then
  first_holder = redis.call('GET', KEYS[1])
  if not first_holder and redis.call('EXISTS', KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7]) == 0 then
    -- One free key with no trace of any other mode, no legacy counter, nobody waiting: the common
    -- case, decided before the helpers below are even defined (each call would build them anew).
    local fence = redis.call('INCR', KEYS[2])
    redis.call('SET', KEYS[1], ARGV[1] .. ':' .. fence, 'PX', ARGV[2])
    return {1, fence}
  end
end
${SHARED_HOLDERS}
${NEXT_FENCE}
${LOCK_VALUE}
local n = #KEYS / 7
local announce = tonumber(ARGV[3])
local mine = {}
local other = {}
for i = 1, n do
  local base = 7 * (i - 1)
  local holder
  if single then
    holder = first_holder
  else
    holder = redis.call('GET', KEYS[base + 1])
  end
  if holder then
    mine[i] = fence_if_mine(holder, ARGV[1])
    if not mine[i] then
      if announce > 0 then
        mark_wanted(KEYS[base + 4], announce)
        flag_wanted(KEYS[base + 1], holder)
      end
      return {0, i, redis.call('PTTL', KEYS[base + 1])}
    end
  elseif single or redis.call('EXISTS', KEYS[base + 3], KEYS[base + 4], KEYS[base + 5], KEYS[base + 6], KEYS[base + 7]) > 0 then
    -- (A single free key got here only because that EXISTS above found something.)
    other[i] = true
    local shared_until = live_until(KEYS[base + 5]) or live_until(KEYS[base + 7])
    if shared_until then
      if announce > 0 then
        mark_wanted(KEYS[base + 4], announce)
        redis.call('SET', KEYS[base + 6], '1', 'PX', announce)
      end
      return {0, i, shared_until - server_now()}
    end
  end
end
local reply = {1}
for i = 1, n do
  local base = 7 * (i - 1)
  local fence = mine[i]
  if fence then
    -- This very attempt, re-sent after a lost reply (tokens are never reused): its own fence.
    redis.call('PEXPIRE', KEYS[base + 1], ARGV[2])
  else
    fence = next_fence(KEYS[base + 2], KEYS[base + 3], other[i])
    local value = ARGV[1] .. ':' .. fence
    if other[i] then
      redis.call('DEL', KEYS[base + 6])
      if redis.call('EXISTS', KEYS[base + 4]) == 1 then
        value = value .. ':w'
      end
    end
    redis.call('SET', KEYS[base + 1], value, 'PX', ARGV[2])
  end
  reply[i + 1] = fence
end
return reply
`;

/**
 * KEYS lock keys; ARGV[1] token, ARGV[2] ttl ms.
 * Renews only if every key is still ours (its value starts with exactly `<token>:`); 1 renewed, 0
 * lost (the caller treats the lease as lost).
 */
export const EXTEND_SCRIPT = `
local mine = ARGV[1] .. ':'
for i = 1, #KEYS do
  if string.sub(redis.call('GET', KEYS[i]) or '', 1, #mine) ~= mine then
    return 0
  end
end
for i = 1, #KEYS do
  redis.call('PEXPIRE', KEYS[i], ARGV[2])
end
return 1
`;

/**
 * KEYS lock keys; ARGV[1] token, ARGV[2] release channel, ARGV[3..] the user keys (for the
 * message).
 * Deletes only keys still owned by the token (value starting with exactly `<token>:`). A key
 * someone waited for during this hold, or whose "wanted" marker existed when it was granted (see
 * ACQUIRE_SCRIPT: its value then ends in `:w`), is announced as "r<token><key>" so waiters wake at
 * once; the token lets a Redlock subscriber count one release heard from several masters once. A
 * key nobody waits for is not announced, so releases cost the other processes nothing. The marker
 * key itself is left to expire: it keeps later holds of the key announcing while waiters remain.
 * Returns how many keys were released.
 */
export const RELEASE_SCRIPT = `
local released = 0
local mine = ARGV[1] .. ':'
for i = 1, #KEYS do
  local value = redis.call('GET', KEYS[i])
  if value and string.sub(value, 1, #mine) == mine then
    redis.call('DEL', KEYS[i])
    if string.sub(value, -2) == ':w' then
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
 * lock to the head waiter directly, with that waiter's own ttl, and announce it. A hash
 * `<prefix>{K}:queued-by` maps each entry to the number of the waiter's attempt that queued it
 * (set only when the entry is created, deleted with it). The grant message carries that number:
 * the grant happened after that attempt ran, so the waiter counts the lease from when it sent
 * that attempt and holds the lock without another round trip, however late the message arrives
 * (a lease that ran out meanwhile fails the clock check instead).
 */

/** Shared Lua: drops queue heads whose waiters stopped refreshing (crashed or gave up). */
function pruneGoneWaiters(queuedBy: string, queue = 'KEYS[3]', waiting = 'KEYS[4]'): string {
  return `
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
while true do
  local head = redis.call('LINDEX', ${queue}, 0)
  if not head then break end
  local gone_at = redis.call('ZSCORE', ${waiting}, head)
  if gone_at and tonumber(gone_at) > now then break end
  redis.call('LPOP', ${queue})
  redis.call('ZREM', ${waiting}, head)
  redis.call('HDEL', ${queuedBy}, head)
end`;
}

/**
 * Shared Lua, run right after the lock key was deleted: grants the lock to the first waiter still
 * present (with its own ttl and a new fence) and announces "h<token><fence>:<attempt>:<key>"
 * (attempt: the one that queued it), or "g<token><fence>:<key>" for an entry queued by an earlier
 * version (no attempt known: the waiter asks again), or a plain release "r<releasing token><key>"
 * when nobody is queued. Leaves the grant's message in `handed` (nil without a grant), which the
 * script returns (see ANNOUNCE_GRANT).
 */
function handOver(channel: string, userKey: string, legacyKey: string, queuedBy: string, wanted: string): string {
  // ARGV[1] is always the releasing token; the script includes NEXT_FENCE and ANNOUNCE_GRANT, and
  // ends with "return handed or 1".
  // The granted value carries the ":w" flag while others still wait (queued, or marked the key
  // wanted), so a default-mode holder's release hands on or announces in turn.
  return `
${pruneGoneWaiters(queuedBy)}
local handed = nil
local head = redis.call('LPOP', KEYS[3])
if head then
  redis.call('ZREM', KEYS[4], head)
  local attempt = redis.call('HGET', ${queuedBy}, head)
  redis.call('HDEL', ${queuedBy}, head)
  local separator = string.find(head, ':', 1, true)
  local token = string.sub(head, 1, separator - 1)
  local fence = next_fence(KEYS[2], ${legacyKey}, true)
  local value = token .. ':' .. fence
  if redis.call('EXISTS', KEYS[3], ${wanted}) > 0 then
    value = value .. ':w'
  end
  redis.call('SET', KEYS[1], value, 'PX', string.sub(head, separator + 1))
  handed = announce_grant(${channel}, token, fence, attempt, ${userKey})
else
  redis.call('PUBLISH', ${channel}, 'r' .. ARGV[1] .. ${userKey})
end`;
}

/**
 * KEYS[1] lock, KEYS[2] shared fence counter, KEYS[3] queue, KEYS[4] waiting, KEYS[5] readers,
 * KEYS[6] permits, KEYS[7] writer-waiting marker, KEYS[8] wanted marker, KEYS[9] legacy fence
 * counter, KEYS[10] queued-by; ARGV[1] token, ARGV[2] ttl, ARGV[3] how long the waiter counts as
 * present without refreshing (ms), ARGV[4] how long to mark the key, ARGV[5] the number of this
 * attempt (recorded as the entry's queued-by when this attempt creates the entry).
 * The lock goes to the caller only if it is free (no holder of any mode) and nobody queued before
 * the caller. Shared holders (readers, permits) keep a fair writer out exactly as a plain one: it
 * marks itself waiting, so new shared holders queue behind it (writers are never starved), and
 * marks the key wanted, so the last shared holder's release wakes it.
 * Returns {1, fence}, {1, fence, 1} when a release had already granted it to this token, or {0, 1, PTTL}
 * after queueing (or refreshing) the caller.
 */
export const FAIR_ACQUIRE_SCRIPT = `
${pruneGoneWaiters('KEYS[10]')}
${SHARED_HOLDERS}
-- One clock for the whole script: server_now() answers the prune's reading above, instead of a
-- second TIME a few µs later (a shared lease then looks live that much longer, never shorter).
now_ms = now
${NEXT_FENCE}
${LOCK_VALUE}
${QUEUE_ME}
local entry = ARGV[1] .. ':' .. ARGV[2]
local holder = redis.call('GET', KEYS[1])
local own = fence_if_mine(holder, ARGV[1])
if own then
  return {1, own, 1}
end
if not holder and (live_until(KEYS[5]) or live_until(KEYS[6])) then
  holder = 'shared'
  if tonumber(ARGV[4]) > 0 then
    redis.call('SET', KEYS[7], '1', 'PX', ARGV[4])
    mark_wanted(KEYS[8], ARGV[4])
  end
end
if not holder then
  local head = redis.call('LINDEX', KEYS[3], 0)
  if (not head) or head == entry then
    if head then
      redis.call('LPOP', KEYS[3])
      redis.call('ZREM', KEYS[4], entry)
      redis.call('HDEL', KEYS[10], entry)
    end
    local fence = next_fence(KEYS[2], KEYS[9], true)
    redis.call('SET', KEYS[1], ARGV[1] .. ':' .. fence, 'PX', ARGV[2])
    redis.call('DEL', KEYS[7])
    return {1, fence}
  end
end
queue_me(KEYS[3], KEYS[4], KEYS[10], ARGV[3], ARGV[5])
if holder ~= 'shared' then
  -- A default-mode holder hands on at release only when its value carries the flag.
  flag_wanted(KEYS[1], holder)
end
return {0, 1, redis.call('PTTL', KEYS[1])}
`;

/**
 * KEYS[1] lock, KEYS[2] shared fence counter, KEYS[3] queue, KEYS[4] waiting, KEYS[5] legacy
 * fence counter, KEYS[6] queued-by, KEYS[7] wanted marker; ARGV[1] token, ARGV[2] channel, ARGV[3] user key. Releases if
 * owned and hands the lock straight to the first waiter still present (see handOver); with
 * nobody queued it announces a plain release.
 * Returns the grant's message if it handed the lock over, else 1 if released, 0 if the lock was
 * not ours.
 */
export const FAIR_RELEASE_SCRIPT = `
${NEXT_FENCE}
${LOCK_VALUE}
${ANNOUNCE_GRANT}
if not fence_if_mine(redis.call('GET', KEYS[1]), ARGV[1]) then
  return 0
end
redis.call('DEL', KEYS[1])
${handOver('ARGV[2]', 'ARGV[3]', 'KEYS[5]', 'KEYS[6]', 'KEYS[7]')}
return handed or 1
`;

/**
 * KEYS as above; ARGV[1] token, ARGV[2] ttl, ARGV[3] channel, ARGV[4] user key.
 * A fair waiter gives up: it leaves the queue, and if a release granted it the lock meanwhile,
 * passes the lock on as a release would. Returns 1 (or, when it passed the lock on, the grant's
 * message) if it had been granted the lock, else 0.
 */
export const FAIR_LEAVE_SCRIPT = `
${NEXT_FENCE}
${LOCK_VALUE}
${ANNOUNCE_GRANT}
${QUEUE_ME}
leave_queue(KEYS[3], KEYS[4], KEYS[6])
if not fence_if_mine(redis.call('GET', KEYS[1]), ARGV[1]) then
  return 0
end
redis.call('DEL', KEYS[1])
${handOver('ARGV[3]', 'ARGV[4]', 'KEYS[5]', 'KEYS[6]', 'KEYS[7]')}
return handed or 1
`;

/**
 * Default mode, one key, a caller that will wait (direct handoff without strict FIFO). KEYS: [1]
 * lock, [2] shared fence counter, [3] legacy fence counter, [4] wanted marker, [5] readers, [6]
 * writer-waiting marker, [7] permits, [8] queue, [9] waiting, [10] queued-by (the fair queue's
 * keys); ARGV[1] token, ARGV[2] ttl, ARGV[3] how long to mark the key wanted, ARGV[4] how long the
 * waiter counts as present without trying again, ARGV[5] the number of this attempt.
 * Like ACQUIRE_SCRIPT for one key, except that a busy attempt also queues the caller (as a fair
 * waiter queues), so the holder's release can hand the lock straight to it. A free key is taken
 * whoever is queued (no FIFO: that is fair mode), and taking it takes the caller out of the queue.
 * An attempt that finds the key already its own was handed it by a release (or is this very
 * attempt re-sent after a lost reply): it answers "granted earlier", so the lease is counted from
 * before the grant. Returns {1, fence}, {1, fence, 1} (granted earlier) or {0, 1, ms until free}.
 */
export const QUEUED_ACQUIRE_SCRIPT = `
local holder = redis.call('GET', KEYS[1])
if not holder and redis.call('EXISTS', KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7], KEYS[8]) == 0 then
  -- Free, no trace of another mode, nobody waiting or queued: decided before any helper is built.
  local fence = redis.call('INCR', KEYS[2])
  redis.call('SET', KEYS[1], ARGV[1] .. ':' .. fence, 'PX', ARGV[2])
  return {1, fence}
end
${SHARED_HOLDERS}
${NEXT_FENCE}
${LOCK_VALUE}
${QUEUE_ME}
if holder then
  local own = fence_if_mine(holder, ARGV[1])
  if own then
    redis.call('PEXPIRE', KEYS[1], ARGV[2])
    leave_queue(KEYS[8], KEYS[9], KEYS[10])
    return {1, own, 1}
  end
  mark_wanted(KEYS[4], ARGV[3])
  flag_wanted(KEYS[1], holder)
  queue_me(KEYS[8], KEYS[9], KEYS[10], ARGV[4], ARGV[5])
  return {0, 1, redis.call('PTTL', KEYS[1])}
end
local shared_until = live_until(KEYS[5]) or live_until(KEYS[7])
if shared_until then
  -- Readers or permit holders: wait like a plain writer (marked waiting, so new ones queue behind).
  mark_wanted(KEYS[4], ARGV[3])
  redis.call('SET', KEYS[6], '1', 'PX', ARGV[3])
  queue_me(KEYS[8], KEYS[9], KEYS[10], ARGV[4], ARGV[5])
  return {0, 1, shared_until - server_now()}
end
leave_queue(KEYS[8], KEYS[9], KEYS[10])
local fence = next_fence(KEYS[2], KEYS[3], true)
local value = ARGV[1] .. ':' .. fence
redis.call('DEL', KEYS[6])
if redis.call('EXISTS', KEYS[4], KEYS[8]) > 0 then
  value = value .. ':w'
end
redis.call('SET', KEYS[1], value, 'PX', ARGV[2])
return {1, fence}
`;

/**
 * Default mode, one key: KEYS[1] lock, [2] shared fence counter, [3] queue, [4] waiting, [5]
 * legacy fence counter, [6] queued-by, [7] wanted marker; ARGV[1] token, ARGV[2] channel, ARGV[3]
 * user key. Compare-and-delete; when the value carries the ":w" flag (someone waits), the lock goes
 * straight to the first queued waiter still present (see handOver), or the release is announced.
 * Returns the grant's message if it handed the lock over, else 1 if released, 0 if the lock was
 * not ours.
 */
export const RELEASE_ONE_SCRIPT = releaseOneKey(false);

/**
 * Default mode, one key, released by a process that has a waiter of its own for the key (local
 * succession). KEYS as RELEASE_ONE_SCRIPT; ARGV[1] token, ARGV[2] channel, ARGV[3] user key,
 * ARGV[4] the successor's token (one that has not asked Redis for the key: nothing of it is queued
 * here), ARGV[5] its ttl ms.
 * Compare-and-delete, then: when no other instance waits for the key (nobody is queued, and the
 * "wanted" marker, which waiters of every mode set, is absent or names only the releasing
 * instance, see mark_wanted), the key goes straight to the successor with a new fence, in this
 * same atomic step, and nobody else is told. Otherwise it is exactly RELEASE_ONE_SCRIPT: waiters
 * elsewhere come first, so a process cannot keep a key among its own callers while others wait.
 * Returns "s<fence>" when the successor got the key, else as RELEASE_ONE_SCRIPT.
 */
export const RELEASE_TO_SUCCESSOR_SCRIPT = releaseOneKey(true);

/** RELEASE_ONE_SCRIPT, and with `succession` RELEASE_TO_SUCCESSOR_SCRIPT (the same with one step more). */
function releaseOneKey(succession: boolean): string {
  // The successor step needs next_fence before the ":w" check; the plain release defines it only
  // past that check, which most releases (nobody waiting) never reach.
  const successor = `
${NEXT_FENCE}
local marked_by = redis.call('GET', KEYS[7])
if (not marked_by or marked_by == string.sub(ARGV[1], 1, ${INSTANCE_ID_LENGTH})) and redis.call('EXISTS', KEYS[3]) == 0 then
  local fence = next_fence(KEYS[2], KEYS[5], true)
  local successor = ARGV[4] .. ':' .. fence
  if marked_by then
    -- As for any grant made while the marker exists (see ACQUIRE_SCRIPT).
    successor = successor .. ':w'
  end
  redis.call('SET', KEYS[1], successor, 'PX', ARGV[5])
  return 's' .. fence
end`;
  return `
local value = redis.call('GET', KEYS[1])
local mine = ARGV[1] .. ':'
if not value or string.sub(value, 1, #mine) ~= mine then
  return 0
end
redis.call('DEL', KEYS[1])${succession ? successor : ''}
if string.sub(value, -2) ~= ':w' then
  return 1
end
${succession ? '' : NEXT_FENCE}
${ANNOUNCE_GRANT}
${handOver('ARGV[2]', 'ARGV[3]', 'KEYS[5]', 'KEYS[6]', 'KEYS[7]')}
return handed or 1
`;
}

/**
 * Redlock: KEYS pairs per user key: [2i-1] its shared fence counter, [2i] its legacy per-key
 * counter; ARGV[i] the fence that key must reach. Raises every shared counter to at least the
 * fence just handed out (and a legacy counter, where one still exists), so the next holder's
 * quorum (which overlaps this one) counts above it.
 */
export const RAISE_FENCES_SCRIPT = `
for i = 1, #KEYS / 2 do
  local fence = tonumber(ARGV[i])
  local current = tonumber(redis.call('GET', KEYS[2 * i - 1]) or '0')
  if current < fence then
    redis.call('SET', KEYS[2 * i - 1], fence)
  end
  local legacy = redis.call('GET', KEYS[2 * i])
  if legacy and tonumber(legacy) < fence then
    redis.call('SET', KEYS[2 * i], fence)
  end
end
return 1
`;

/*
 * Counting semaphores. Per user key K: a sorted set `<prefix>{K}:permits` of holder tokens scored
 * by lease expiry in Redis server time (so clients with skewed clocks can neither steal nor lose
 * permits), its companion hash `<prefix>{K}:permits:holds` (token -> fence, and the agreed
 * `limit`), and the same fence counters and "wanted" marker as an exclusive lock. The set and its
 * hash expire with their longest lease and are renewed together, so the agreed limit lives exactly
 * as long as the permits that agreed on it.
 */

/**
 * KEYS per user key i (8 each): [8i-7] permits set, [8i-6] its holds hash, [8i-5] shared fence
 * counter, [8i-4] wanted marker, [8i-3] lock, [8i-2] readers set, [8i-1] writer-waiting marker,
 * [8i] legacy fence counter; ARGV[1] token,
 * ARGV[2] ttl, ARGV[3] permits, ARGV[4] how long to mark a full key as wanted.
 * A permit is free when fewer than `permits` hold one, and nobody holds the key exclusively, reads
 * it, or waits to write it. All or nothing over the keys. Returns {1, fence...}, {0, i, ms until
 * it may be free}, or {-1, i, limit in use} when the key's holders agreed on another number.
 */
function semaphoreAcquire(queued: boolean): string {
  return `
${SHARED_HOLDERS}
${NEXT_FENCE}
${LOCK_VALUE}
${SORTED_HOLDS}
local now = server_now()
local n = ${queued ? 1 : '#KEYS / 8'}
${queued ? QUEUE_ME : ''}
local already = false
-- The limit each key's holds hash records now, when read below: rewritten only if it differs.
local agreed = {}
-- Each key's fence already held by this token (false: none), as read below.
local held = {}
local permits = tonumber(ARGV[3])
local announce = tonumber(ARGV[4])
for i = 1, n do
  local base = 8 * (i - 1)
  local set, holds = KEYS[base + 1], KEYS[base + 2]
  prune(set, holds, now)
  held[i] = redis.call('HGET', holds, ARGV[1])
  if held[i] then
    already = true
  else
    local holders = redis.call('ZCARD', set)
    local limit = tonumber(redis.call('HGET', holds, 'limit') or '0')
    if holders > 0 and limit ~= permits and limit > 0 then
      return {-1, i, limit}
    end
    agreed[i] = limit
    local busy_until
    local writer = redis.call('PTTL', KEYS[base + 5])
    local waiting = redis.call('PTTL', KEYS[base + 7])
    if writer ~= -2 or waiting ~= -2 then
      busy_until = now + math.max(writer, waiting)
    else
      busy_until = live_until(KEYS[base + 6])
    end
    -- Full, or held by holders whose limit is unknown (never by these scripts: the hash lives as
    -- long as its set), whom nobody is admitted beside rather than guess.
    if not busy_until and (holders >= permits or (holders > 0 and limit == 0)) then
      busy_until = tonumber(redis.call('ZRANGE', set, 0, 0, 'WITHSCORES')[2])
    end
    if busy_until then
      if announce > 0 then
        mark_wanted(KEYS[base + 4], announce)
        if writer > 0 then
          flag_wanted(KEYS[base + 5], redis.call('GET', KEYS[base + 5]))
        end
      end
      ${queued ? 'queue_me(KEYS[9], KEYS[10], KEYS[11], ARGV[5], ARGV[6])' : ''}
      return {0, i, busy_until - now}
    end
  end
end
local reply = {1}
local ttl = tonumber(ARGV[2])
for i = 1, n do
  local base = 8 * (i - 1)
  local set, holds = KEYS[base + 1], KEYS[base + 2]
  reply[i + 1] = hold_in(set, holds, KEYS[base + 3], KEYS[base + 8], ARGV[1], now, ttl, held[i])
  if agreed[i] ~= permits then
    redis.call('HSET', holds, 'limit', permits)
  end
  keep_alive(set, holds, ttl)
end
${queued ? 'leave_queue(KEYS[9], KEYS[10], KEYS[11])\nif already then reply[3] = 1 end' : ''}
return reply
`;
}
export const SEMAPHORE_ACQUIRE_SCRIPT = semaphoreAcquire(false);
/**
 * One key, a caller that will wait: as SEMAPHORE_ACQUIRE_SCRIPT with one key (KEYS[1..8]), plus
 * the permit queue KEYS[9] queue, [10] waiting, [11] queued-by; ARGV[5] how long the waiter counts
 * as present, ARGV[6] the number of this attempt. A busy attempt queues the caller, so a permit's
 * release can hand it over (PERMIT_RELEASE_ONE_SCRIPT); taking a permit takes the caller out of the
 * queue. A permit this token already holds was handed to it (or this attempt is re-sent): the
 * reply then ends with 1 ("granted earlier"). Returns {1, fence}, {1, fence, 1} or as above.
 */
export const QUEUED_SEMAPHORE_ACQUIRE_SCRIPT = semaphoreAcquire(true);

/**
 * Gives one permit back and hands it to the first queued permit waiter still present, unless a
 * writer holds or waits for the key (writers are never starved: the permits then drain). KEYS:
 * [1] permits set, [2] holds hash, [3] wanted marker, [4] lock, [5] writer-waiting marker, [6]
 * shared fence counter, [7] legacy fence counter, [8] permit queue, [9] waiting, [10] queued-by;
 * ARGV[1] token. Announces "h<token><fence>:<attempt>:<key>" (see ANNOUNCE_GRANT) for a handoff,
 * else a plain release when someone marked the key wanted. Evaluates to the grant's message if it
 * handed the permit on, else 1 if the token held a permit, 0 if not.
 */
function permitGiveBack(channel: string, userKey: string): string {
  return `
local function give_back()
  if redis.call('ZREM', KEYS[1], ARGV[1]) == 0 then return 0 end
  redis.call('HDEL', KEYS[2], ARGV[1])
  local limit = tonumber(redis.call('HGET', KEYS[2], 'limit') or '0')
  local handed = nil
  if limit > 0 and redis.call('EXISTS', KEYS[4], KEYS[5]) == 0 then
    ${pruneGoneWaiters('KEYS[10]', 'KEYS[8]', 'KEYS[9]')}
    prune(KEYS[1], KEYS[2], now)
    local head = nil
    if redis.call('ZCARD', KEYS[1]) < limit then
      head = redis.call('LPOP', KEYS[8])
    end
    if head then
      redis.call('ZREM', KEYS[9], head)
      local attempt = redis.call('HGET', KEYS[10], head)
      redis.call('HDEL', KEYS[10], head)
      local separator = string.find(head, ':', 1, true)
      local token = string.sub(head, 1, separator - 1)
      local ttl = tonumber(string.sub(head, separator + 1))
      local fence = hold_in(KEYS[1], KEYS[2], KEYS[6], KEYS[7], token, now, ttl)
      redis.call('HSET', KEYS[2], 'limit', limit)
      keep_alive(KEYS[1], KEYS[2], ttl)
      handed = announce_grant(${channel}, token, fence, attempt, ${userKey})
    end
  end
  if redis.call('EXISTS', KEYS[1]) == 0 then
    redis.call('DEL', KEYS[2])
  end
  if not handed and redis.call('EXISTS', KEYS[3]) == 1 then
    redis.call('PUBLISH', ${channel}, 'r' .. ARGV[1] .. ${userKey})
  end
  return handed or 1
end`;
}

/**
 * One permit of one key (KEYS as permitGiveBack); ARGV[1] token, ARGV[2] channel, ARGV[3] user key.
 * Returns the grant's message if the permit went to a waiter, else 1 if released, 0 if not held.
 */
export const PERMIT_RELEASE_ONE_SCRIPT = `
${NEXT_FENCE}
${SORTED_HOLDS}
${ANNOUNCE_GRANT}
${permitGiveBack('ARGV[2]', 'ARGV[3]')}
return give_back()
`;

/**
 * A queued permit waiter gives up (KEYS as permitGiveBack); ARGV[1] token, ARGV[2] ttl, ARGV[3]
 * channel, ARGV[4] user key: it leaves the permit queue and, if a release handed it a permit
 * meanwhile, gives that back (handing it on). Returns 1 if it held one.
 */
export const PERMIT_LEAVE_SCRIPT = `
${NEXT_FENCE}
${SORTED_HOLDS}
${ANNOUNCE_GRANT}
${QUEUE_ME}
leave_queue(KEYS[8], KEYS[9], KEYS[10])
${permitGiveBack('ARGV[3]', 'ARGV[4]')}
return give_back()
`;

/**
 * KEYS pairs per lease key: [2i-1] sorted set (permits or readers), [2i] its holds hash; ARGV[1]
 * token, ARGV[2] ttl. Renews the token's place in every set if it still holds one everywhere (an
 * expired hold is gone for good), and the hash with its set. 1 renewed, 0 lost.
 */
export const SEMAPHORE_EXTEND_SCRIPT = `
${SERVER_NOW}
${SORTED_HOLDS}
for i = 1, #KEYS, 2 do
  local expiry = redis.call('ZSCORE', KEYS[i], ARGV[1])
  if not expiry or tonumber(expiry) <= now then
    return 0
  end
end
local ttl = tonumber(ARGV[2])
for i = 1, #KEYS, 2 do
  redis.call('ZADD', KEYS[i], 'XX', now + ttl, ARGV[1])
  keep_alive(KEYS[i], KEYS[i + 1], ttl)
end
return 1
`;

/**
 * KEYS triples per user key: [3i-2] sorted set, [3i-1] its holds hash, [3i] wanted marker;
 * ARGV[1] token, ARGV[2] channel, ARGV[3..] user keys. Gives the token's holds back, announcing
 * them to waiters if any; the hash goes with the set's last member.
 */
export const SEMAPHORE_RELEASE_SCRIPT = `
local released = 0
for i = 1, #KEYS / 3 do
  local set, holds, wanted = KEYS[3 * i - 2], KEYS[3 * i - 1], KEYS[3 * i]
  if redis.call('ZREM', set, ARGV[1]) == 1 then
    released = released + 1
    redis.call('HDEL', holds, ARGV[1])
    if redis.call('EXISTS', set) == 0 then
      redis.call('DEL', holds)
    end
    if redis.call('EXISTS', wanted) == 1 then
      redis.call('PUBLISH', ARGV[2], 'r' .. ARGV[1] .. ARGV[i + 2])
    end
  end
end
return released
`;

/*
 * Read-write locks. Readers of user key K share `<prefix>{K}:readers`, a sorted set of tokens
 * scored by lease expiry (Redis time), with its holds hash `<prefix>{K}:readers:holds`; the writer
 * is the ordinary exclusive lock `<prefix>{K}`.
 */

/**
 * KEYS per user key i (8 each): [8i-7] readers set, [8i-6] its holds hash, [8i-5] shared fence
 * counter, [8i-4] wanted marker, [8i-3] lock, [8i-2] permits set, [8i-1] writer-waiting marker,
 * [8i] legacy fence counter; ARGV[1] token,
 * ARGV[2] ttl, ARGV[3] how long to mark a busy key as wanted.
 * A reader gets in unless a writer holds the key or waits for it (fair or not), or it is held as a
 * semaphore. All or nothing. Returns {1, fence...} or {0, i, ms until it may be free}.
 */
export const READ_ACQUIRE_SCRIPT = `
${SHARED_HOLDERS}
${NEXT_FENCE}
${LOCK_VALUE}
${SORTED_HOLDS}
local now = server_now()
local n = #KEYS / 8
-- Each key's fence already held by this token (false: none), as read below (the keys are distinct).
local held = {}
for i = 1, n do
  local base = 8 * (i - 1)
  local set, holds = KEYS[base + 1], KEYS[base + 2]
  prune(set, holds, now)
  held[i] = redis.call('HGET', holds, ARGV[1])
  if not held[i] then
    local busy_until
    local writer = redis.call('PTTL', KEYS[base + 5])
    local waiting = redis.call('PTTL', KEYS[base + 7])
    if writer ~= -2 or waiting ~= -2 then
      busy_until = now + math.max(writer, waiting)
    else
      busy_until = live_until(KEYS[base + 6])
    end
    if busy_until then
      if tonumber(ARGV[3]) > 0 then
        mark_wanted(KEYS[base + 4], ARGV[3])
        if writer > 0 then
          flag_wanted(KEYS[base + 5], redis.call('GET', KEYS[base + 5]))
        end
      end
      return {0, i, busy_until - now}
    end
  end
end
local reply = {1}
local ttl = tonumber(ARGV[2])
for i = 1, n do
  local base = 8 * (i - 1)
  local set, holds = KEYS[base + 1], KEYS[base + 2]
  reply[i + 1] = hold_in(set, holds, KEYS[base + 3], KEYS[base + 8], ARGV[1], now, ttl, held[i])
  keep_alive(set, holds, ttl)
end
return reply
`;

"""The Lua scripts of the "queues" extension: named channels as work queues.

A named channel stays the Redis list that ``send()`` pushes to and ``receive()``
takes from; a sender does not know whether workers take with leases. Next to the
list, with the same hash tag (so one script reaches them all, on any shard or
cluster slot; see :mod:`.sharding`), live:

* ``leases`` (zset ``tag -> deadline``) and ``leased`` (hash ``tag -> item``): the
  messages handed out with a lease and not yet acknowledged;
* ``delayed`` (zset ``id|item -> due time``): sent for later, or given back for a
  retry after a delay;
* ``dead`` (zset ``id -> id``) and ``dead_letters`` (hash ``id -> entry``, and
  ``#``: the last id given out): messages that failed for good, oldest first.

Lease deadlines and due times are in Redis's clock (``TIME``), so processes on
machines whose clocks disagree still agree on when a lease runs out. Message
expiry stays in the senders' clocks, as everywhere in the layer: items start with
a 13-digit deadline, and an item given back for another attempt gets a new
deadline and the attempt marker (see :mod:`.envelope`) from the script.

Nothing runs in the background: whichever take (or named-channel feed) comes next
moves overdue leases back to the head of the list and due delayed messages to its
tail, and every take's reply says how long until the next of those falls due.
"""

from __future__ import annotations

from .scripts import Script

_FUNCTIONS = """
local function server_now()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
-- The item's message with a new deadline (13 digits) and attempt + ``step``
-- (step 0: the first attempt again, no marker).
local function reissue(item, deadline, step)
  local attempt, body = 1, string.sub(item, 14)
  if string.byte(item, 14) == 126 then  -- '~': the attempt marker
    attempt = tonumber(string.sub(item, 15, 19))
    body = string.sub(item, 20)
  end
  if step == 0 then return deadline .. body end
  return deadline .. string.format('~%05d', math.min(attempt + step, 99999)) .. body
end
-- Keep ``key`` for at least ``ms`` more milliseconds.
local function keep_for(key, ms)
  local left = redis.call('PTTL', key)
  if left ~= -2 and left < tonumber(ms) then redis.call('PEXPIRE', key, ms) end
end
-- Run ``command key args...`` in slices: Lua's unpack() has a limit of ~8000 values.
local function bulk(command, key, args)
  for first = 1, #args, 4000 do
    redis.call(command, key, unpack(args, first, math.min(first + 3999, #args)))
  end
end
-- Tell waiting takers to look again if ``member`` is now the earliest of ``key``.
local function announce_if_first(key, member, wake, publish)
  if redis.call('ZRANGE', key, 0, 0)[1] == member then redis.call(publish, wake, '') end
end
"""

#: Take up to ``count`` items from a named channel, after moving overdue leases to
#: the head of the list and due delayed items to its tail.
#: KEYS: list, taken (this caller's unconfirmed batch), leases, leased, delayed.
#: ARGV: 1 id of the batch the caller delivered, 2 id of the new batch (with a
#: lease: the base of the new tags, tag = base.N), 3 count, 4 taken ttl (s),
#: 5 lease (ms; 0: none), 6 now (ms, the caller's clock: item deadlines),
#: 7 deadline for items given back (13 digits), 8 list ttl (s), 9 wake channel,
#: 10 publish command, 11 most items moved or dropped as expired in one call,
#: 12 ttl of the lease keys (ms).
#: Without a lease the batch is kept in ``taken`` until the caller's next call
#: names it as delivered (as TAKE does), so a call cancelled after the script ran
#: hands the same batch to the next call instead of losing it.
#: Returns {wait, expired, redelivered, batch id, '', items...}: ``wait`` is the ms
#: until the next lease or delayed item falls due (-1: none), ``expired`` how many
#: expired items were dropped, ``redelivered`` how many overdue leases went back.
QUEUE_TAKE = Script(
    "queue_take",
    _FUNCTIONS
    + """
local list, taken, leases, leased, delayed = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local lease = tonumber(ARGV[5])
local limit = tonumber(ARGV[11])
if lease == 0 then
  local head = redis.call('LINDEX', taken, 0)
  if head then
    if head ~= ARGV[1] then
      return {0, 0, 0, unpack(redis.call('LRANGE', taken, 0, -1))}
    end
    redis.call('DEL', taken)
  end
end
local now = server_now()
local queued = redis.call('LLEN', list)
local overdue = redis.call('ZRANGEBYSCORE', leases, '-inf', now, 'LIMIT', 0, limit)
local redelivered = 0
if #overdue > 0 then
  local items = redis.call('HMGET', leased, unpack(overdue))
  bulk('ZREM', leases, overdue)
  bulk('HDEL', leased, overdue)
  local back = {}
  for i = #overdue, 1, -1 do  -- LPUSH reverses: the earliest lease ends up first
    if items[i] then back[#back + 1] = reissue(items[i], ARGV[7], 1) end
  end
  if #back > 0 then bulk('LPUSH', list, back) end
  redelivered = #back
end
local due = redis.call('ZRANGEBYSCORE', delayed, '-inf', now, 'LIMIT', 0, limit)
if #due > 0 then
  bulk('ZREM', delayed, due)
  local items = {}
  for i, member in ipairs(due) do
    items[i] = string.sub(member, string.find(member, '|', 1, true) + 1)
  end
  bulk('RPUSH', list, items)
end
if redelivered + #due > 0 then redis.call('EXPIRE', list, ARGV[8]) end
local count = tonumber(ARGV[3])
local client_now = tonumber(ARGV[6])
local out, expired = {}, 0
while #out < count and expired < limit do
  local items = redis.call('LPOP', list, count - #out)
  if not items then break end
  for _, item in ipairs(items) do
    if tonumber(string.sub(item, 1, 13)) > client_now then
      out[#out + 1] = item
    else
      expired = expired + 1
    end
  end
end
if queued == 0 and redelivered + #due > 0 and redis.call('LLEN', list) > 0 then
  redis.call(ARGV[10], ARGV[9], '')  -- more than this caller takes: wake the others
end
if #out == 0 then
  local wait = -1
  for _, key in ipairs({leases, delayed}) do
    local first = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
    if first[2] then
      local ms = math.max(0, tonumber(first[2]) - now)
      if wait < 0 or ms < wait then wait = ms end
    end
  end
  if expired >= limit then wait = 0 end  -- more expired items may wait: come back
  return {wait, expired, redelivered}
end
if lease > 0 then
  local deadline = now + lease
  local scored, fields = {}, {}
  for i, item in ipairs(out) do
    local tag = ARGV[2] .. '.' .. i
    scored[#scored + 1] = deadline
    scored[#scored + 1] = tag
    fields[#fields + 1] = tag
    fields[#fields + 1] = item
  end
  bulk('ZADD', leases, scored)
  bulk('HSET', leased, fields)
  keep_for(leases, ARGV[12])
  keep_for(leased, ARGV[12])
else
  redis.call('RPUSH', taken, ARGV[2], '', unpack(out))
  redis.call('EXPIRE', taken, ARGV[4])
end
return {0, expired, redelivered, ARGV[2], '', unpack(out)}
""",
)

#: Settle leases. KEYS: leases, leased. ARGV: tags. Returns how many were still leased.
ACK = Script(
    "queue_ack",
    """
local settled = redis.call('ZREM', KEYS[1], unpack(ARGV))
redis.call('HDEL', KEYS[2], unpack(ARGV))
return settled
""",
)

#: Give a leased message back for another attempt after a delay.
#: KEYS: leases, leased, delayed. ARGV: tag, delay (ms), new deadline (13 digits),
#: ttl of the delayed zset (ms), wake channel, publish command. Returns 1, or 0 if
#: the lease is gone (acknowledged, or overdue and already given back).
RETRY = Script(
    "queue_retry",
    _FUNCTIONS
    + """
local item = redis.call('HGET', KEYS[2], ARGV[1])
if not item then return 0 end
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('HDEL', KEYS[2], ARGV[1])
local member = ARGV[1] .. '|' .. reissue(item, ARGV[3], 1)
redis.call('ZADD', KEYS[3], server_now() + tonumber(ARGV[2]), member)
keep_for(KEYS[3], ARGV[4])
announce_if_first(KEYS[3], member, ARGV[5], ARGV[6])
return 1
""",
)

#: Queue an item that becomes visible later. KEYS: delayed.
#: ARGV: id|item, delay (ms), capacity, expiry (ms), ttl (ms), wake channel,
#: publish command. Due items older than ``expiry`` (expired: nobody took them) are
#: dropped first. Returns how many were dropped, or -1 when still full (as
#: PUSH_CHANNEL does).
SEND_LATER = Script(
    "queue_send_later",
    _FUNCTIONS
    + """
local now = server_now()
local dropped = redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - tonumber(ARGV[4]))
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[3]) then return -1 end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
keep_for(KEYS[1], ARGV[5])
announce_if_first(KEYS[1], ARGV[1], ARGV[6], ARGV[7])
return dropped
""",
)

#: Move a leased message to the dead letters. KEYS: leases, leased, dead,
#: dead_letters. ARGV: tag, entry head (failed at: 13 digits, reason length: 6
#: digits, reason), most dead letters kept. Returns {0} if the lease is gone, else
#: {1, ids of the oldest dead letters dropped to make room...}.
DEAD_LETTER = Script(
    "queue_dead_letter",
    """
local item = redis.call('HGET', KEYS[2], ARGV[1])
if not item then return {0} end
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('HDEL', KEYS[2], ARGV[1])
local id = redis.call('HINCRBY', KEYS[4], '#', 1)
redis.call('HSET', KEYS[4], id, ARGV[2] .. item)
redis.call('ZADD', KEYS[3], id, id)
local result = {1}
local excess = redis.call('ZCARD', KEYS[3]) - tonumber(ARGV[3])
if excess > 0 then
  local oldest = redis.call('ZPOPMIN', KEYS[3], excess)
  for i = 1, #oldest, 2 do
    redis.call('HDEL', KEYS[4], oldest[i])
    result[#result + 1] = oldest[i]
  end
end
return result
""",
)

#: The oldest dead letters. KEYS: dead, dead_letters. ARGV: how many.
#: Returns {id, entry, id, entry, ...}.
DEAD_LIST = Script(
    "queue_dead_list",
    """
local ids = redis.call('ZRANGE', KEYS[1], 0, tonumber(ARGV[1]) - 1)
if #ids == 0 then return {} end
local entries = redis.call('HMGET', KEYS[2], unpack(ids))
local result = {}
for i, id in ipairs(ids) do
  if entries[i] then
    result[#result + 1] = id
    result[#result + 1] = entries[i]
  end
end
return result
""",
)

_DEAD_SELECTION = """
local function chosen(first_id)  -- the ids in ARGV from ``first_id`` on; none: all
  if #ARGV >= first_id then
    local ids = {}
    for i = first_id, #ARGV do ids[#ids + 1] = ARGV[i] end
    return ids
  end
  return redis.call('ZRANGE', KEYS[1], 0, -1)
end
local function item_of(entry)  -- entry: failed at (13), reason length (6), reason, item
  return string.sub(entry, 20 + tonumber(string.sub(entry, 14, 19)))
end
"""

#: Send dead letters again as new messages (first attempt, fresh deadline), at the
#: tail of the list. KEYS: dead, dead_letters, list. ARGV: deadline (13 digits), list
#: ttl (s), wake channel, publish command, ids... (none: all). Returns how many.
DEAD_REPLAY = Script(
    "queue_dead_replay",
    _FUNCTIONS
    + _DEAD_SELECTION
    + """
local queued = redis.call('LLEN', KEYS[3])
local replayed = 0
for _, id in ipairs(chosen(5)) do
  local entry = id ~= '#' and redis.call('HGET', KEYS[2], id)
  if entry then
    redis.call('RPUSH', KEYS[3], reissue(item_of(entry), ARGV[1], 0))
    redis.call('HDEL', KEYS[2], id)
    redis.call('ZREM', KEYS[1], id)
    replayed = replayed + 1
  end
end
if replayed > 0 then
  redis.call('EXPIRE', KEYS[3], ARGV[2])
  if queued == 0 then redis.call(ARGV[4], ARGV[3], '') end
end
return replayed
""",
)

#: Drop dead letters. KEYS: dead, dead_letters. ARGV: ids... (none: all).
#: Returns how many.
DEAD_DISCARD = Script(
    "queue_dead_discard",
    _DEAD_SELECTION
    + """
local dropped = 0
for _, id in ipairs(chosen(1)) do
  if id ~= '#' and redis.call('HDEL', KEYS[2], id) == 1 then
    redis.call('ZREM', KEYS[1], id)
    dropped = dropped + 1
  end
end
return dropped
""",
)

#: Put back leases a process still holds after Redis lost them (a restart without
#: persistence). KEYS: leases, leased. ARGV: ttl of the lease keys (ms), then
#: tag, ms left on the lease, item for each lease. Leases Redis still has are left
#: alone. Returns how many were put back.
LEASE_RESTORE = Script(
    "queue_lease_restore",
    _FUNCTIONS
    + """
local now = server_now()
local restored = 0
for i = 2, #ARGV, 3 do
  if redis.call('HSETNX', KEYS[2], ARGV[i], ARGV[i + 2]) == 1 then
    redis.call('ZADD', KEYS[1], now + tonumber(ARGV[i + 1]), ARGV[i])
    restored = restored + 1
  end
end
if restored > 0 then
  keep_for(KEYS[1], ARGV[1])
  keep_for(KEYS[2], ARGV[1])
end
return restored
""",
)

QUEUE_SCRIPTS = (
    QUEUE_TAKE,
    ACK,
    RETRY,
    SEND_LATER,
    DEAD_LETTER,
    DEAD_LIST,
    DEAD_REPLAY,
    DEAD_DISCARD,
    LEASE_RESTORE,
)

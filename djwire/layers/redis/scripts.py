"""The Lua scripts: each does one layer operation atomically inside Redis.

Scripts touch only the keys passed in KEYS, and all of those share one hash tag
(see :mod:`.sharding`), so every script runs unchanged on a single server, on a
shard, and in Redis Cluster. Items start with a 13-digit deadline (see
:mod:`.envelope`), which is all the scripts ever read of them. Needs Redis >= 6.2
(``LPOP key count``, ``ZADD GT``).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

Command = tuple[bytes | str | int | float, ...]


@dataclass(frozen=True)
class Script:
    name: str
    source: str
    sha: str = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "sha", hashlib.sha1(self.source.encode()).hexdigest())

    def evalsha(self, keys: tuple[bytes, ...], args: tuple[bytes | str | int, ...]) -> Command:
        return (b"EVALSHA", self.sha, len(keys), *keys, *args)

    def load(self) -> Command:
        return (b"SCRIPT", b"LOAD", self.source)


#: Push one item to a process inbox. KEYS: inbox, rejections, the receiver's taken
#: batch, its idle mark. ARGV: item, capacity, ttl, wake channel, publish command,
#: writer. Returns 0, or -1 when the inbox is full (then the writer's refusal is
#: counted in the rejections hash, so the receiver does not mistake it for a loss).
#: When the receiver's feed is idle (its last TAKE found nothing and left the idle
#: mark: a batch id), the push makes the item that batch itself, as TAKE would, and
#: publishes it with the wake-up (``batch id`` LF ``item``): the receiver delivers it
#: as it arrives, with no take round trip, and confirms the batch with its next TAKE
#: as usual, so a wake-up lost with a broken subscriber connection loses nothing.
PUSH_INBOX = Script(
    "push_inbox",
    """
local n = redis.call('LLEN', KEYS[1])
if n >= tonumber(ARGV[2]) then
  if ARGV[6] ~= '' then
    redis.call('HINCRBY', KEYS[2], ARGV[6], 1)
    redis.call('EXPIRE', KEYS[2], ARGV[3])
  end
  return -1
end
if n == 0 then
  local batch = redis.call('GET', KEYS[4])
  if batch then
    redis.call('DEL', KEYS[4])
    if redis.call('EXISTS', KEYS[3]) == 0 then
      redis.call('RPUSH', KEYS[3], batch, '', ARGV[1])
      redis.call('EXPIRE', KEYS[3], ARGV[3])
      redis.call(ARGV[5], ARGV[4], batch .. '\\n' .. ARGV[1])
      return 0
    end
  end
end
redis.call('RPUSH', KEYS[1], ARGV[1])
redis.call('EXPIRE', KEYS[1], ARGV[3])
if n == 0 then redis.call(ARGV[5], ARGV[4], '') end
return 0
""",
)

#: Push one item to a named channel. KEYS: channel list.
#: ARGV: item, capacity, ttl, wake channel, publish command, now (ms).
#: When full, expired items at the head are dropped first (expired messages free
#: capacity). Returns how many expired items were dropped, or -1 when still full.
PUSH_CHANNEL = Script(
    "push_channel",
    """
local key = KEYS[1]
local n = redis.call('LLEN', key)
local dropped = 0
if n >= tonumber(ARGV[2]) then
  local now = tonumber(ARGV[6])
  while n > 0 do
    local head = redis.call('LINDEX', key, 0)
    if tonumber(string.sub(head, 1, 13)) > now then break end
    redis.call('LPOP', key)
    n = n - 1
    dropped = dropped + 1
  end
  if n >= tonumber(ARGV[2]) then return -1 end
end
redis.call('RPUSH', key, ARGV[1])
redis.call('EXPIRE', key, ARGV[3])
if n == 0 then redis.call(ARGV[5], ARGV[4], '') end
return dropped
""",
)

#: Take up to ``count`` items, cancel-safely. KEYS: list, taken, rejections, and
#: optionally the idle mark (see PUSH_INBOX).
#: ARGV: id of the batch the caller has delivered, id for the new batch, count, ttl.
#: The batch is also kept in ``taken`` until the caller names it as delivered in its
#: next call, so a caller that dies or is cancelled mid-call gets the same batch
#: back next time instead of losing it. A call that finds nothing leaves the idle
#: mark (the unused new batch id, for the next push to fill); any other call removes
#: it. Returns {} or {batch id, rejections, items...}.
TAKE = Script(
    "take",
    """
local idle = KEYS[4]
local head = redis.call('LINDEX', KEYS[2], 0)
if head then
  if head ~= ARGV[1] then
    if idle then redis.call('DEL', idle) end
    return redis.call('LRANGE', KEYS[2], 0, -1)
  end
  redis.call('DEL', KEYS[2])
end
local items = redis.call('LPOP', KEYS[1], tonumber(ARGV[3]))
local rejected = redis.call('HGETALL', KEYS[3])
if not items then
  if #rejected == 0 then
    if idle then redis.call('SET', idle, ARGV[2], 'EX', ARGV[4]) end
    return {}
  end
  items = {}
end
if idle then redis.call('DEL', idle) end
if #rejected > 0 then redis.call('DEL', KEYS[3]) end
local counts = table.concat(rejected, ' ')
redis.call('RPUSH', KEYS[2], ARGV[2], counts, unpack(items))
redis.call('EXPIRE', KEYS[2], ARGV[4])
table.insert(items, 1, counts)
table.insert(items, 1, ARGV[2])
return items
""",
)

# Groups. KEYS of every group script: members (zset channel -> deadline), processes
# (zset token -> latest deadline of its members), named (zset of the members that are
# named channels), counts (hash token -> how many members that process has). The
# counts keep the processes set exact at O(1) per change: a process leaves it when
# its last member is discarded or expires, whoever discards it, and stays while any
# member is left, whoever added it. (A count missing for a process whose members an
# older djwire wrote: the process is kept until its deadline, the old behaviour.)
_GROUP_FUNCTIONS = """
local function owner(channel)  -- the process token, as sharding.owner_token reads it
  local bang = string.find(channel, '!', 1, true)
  if not bang then return nil end
  return string.match(string.sub(channel, 1, bang - 1), '([^.]*)$')
end
local function forget(token, count)  -- the process has `count` members fewer
  if redis.call('HEXISTS', KEYS[4], token) == 0 then return end
  if redis.call('HINCRBY', KEYS[4], token, -count) <= 0 then
    redis.call('HDEL', KEYS[4], token)
    redis.call('ZREM', KEYS[2], token)
  end
end
local function sweep(now)  -- drop what is past its deadline; each entry once
  local expired = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now)
  if #expired > 0 then
    local per_process = {}
    for _, channel in ipairs(expired) do
      local token = owner(channel)
      if token then per_process[token] = (per_process[token] or 0) + 1 end
    end
    redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
    for token, count in pairs(per_process) do forget(token, count) end
  end
  local gone = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now)
  if #gone > 0 then
    for _, token in ipairs(gone) do redis.call('HDEL', KEYS[4], token) end
    redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
  end
  redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now)
end
"""

#: ARGV: channel, deadline (ms), process token or '' for a named channel, ttl, now (ms).
GROUP_ADD = Script(
    "group_add",
    _GROUP_FUNCTIONS
    + """
sweep(ARGV[5])
local added = redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
redis.call('EXPIRE', KEYS[1], ARGV[4])
if ARGV[3] ~= '' then
  if added == 1 then redis.call('HINCRBY', KEYS[4], ARGV[3], 1) end
  redis.call('EXPIRE', KEYS[4], ARGV[4])
  redis.call('ZADD', KEYS[2], 'GT', ARGV[2], ARGV[3])
  redis.call('EXPIRE', KEYS[2], ARGV[4])
else
  redis.call('ZADD', KEYS[3], ARGV[2], ARGV[1])
  redis.call('EXPIRE', KEYS[3], ARGV[4])
end
return 1
""",
)

#: Re-register many members of one group after Redis lost them (restart).
#: ARGV: process token ('' for named channels), ttl, then deadline/channel pairs.
GROUP_RESTORE = Script(
    "group_restore",
    """
local latest, added = 0, 0
for i = 3, #ARGV, 2 do
  added = added + redis.call('ZADD', KEYS[1], 'GT', ARGV[i], ARGV[i + 1])
  if ARGV[1] == '' then redis.call('ZADD', KEYS[3], 'GT', ARGV[i], ARGV[i + 1]) end
  if tonumber(ARGV[i]) > latest then latest = tonumber(ARGV[i]) end
end
if latest > 0 then
  redis.call('EXPIRE', KEYS[1], ARGV[2])
  if ARGV[1] ~= '' then
    if added > 0 then redis.call('HINCRBY', KEYS[4], ARGV[1], added) end
    redis.call('EXPIRE', KEYS[4], ARGV[2])
    redis.call('ZADD', KEYS[2], 'GT', latest, ARGV[1])
    redis.call('EXPIRE', KEYS[2], ARGV[2])
  else
    redis.call('EXPIRE', KEYS[3], ARGV[2])
  end
end
return 1
""",
)

#: ARGV: channel, now (ms). The channel's process leaves the processes set if this
#: was its last member. Returns 1 if the channel was a member.
GROUP_DISCARD = Script(
    "group_discard",
    _GROUP_FUNCTIONS
    + """
sweep(ARGV[2])
local removed = redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('ZREM', KEYS[3], ARGV[1])
local token = owner(ARGV[1])
if removed == 1 and token then forget(token, 1) end
return removed
""",
)

#: Where a group message must go. ARGV: now (ms).
#: Returns {process tokens, named channels}, after dropping expired entries.
GROUP_TARGETS = Script(
    "group_targets",
    _GROUP_FUNCTIONS
    + """
sweep(ARGV[1])
return {redis.call('ZRANGE', KEYS[2], 0, -1), redis.call('ZRANGE', KEYS[3], 0, -1)}
""",
)

ALL = (PUSH_INBOX, PUSH_CHANNEL, TAKE, GROUP_ADD, GROUP_RESTORE, GROUP_DISCARD, GROUP_TARGETS)

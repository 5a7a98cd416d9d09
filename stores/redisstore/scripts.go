package redisstore

import "github.com/redis/go-redis/v9"

// All Lua of the package. Every script declares the keys it touches, and
// those keys share one hash tag, so each runs on one Cluster slot.
//
// Expiry convention of the task scripts (the keys of one {taskId}): while
// the task has not ended, a write refreshes the written keys to the active
// TTL; once it has ended (the meta hash holds "terminal", set by the
// terminal event, or "ended", set by a terminal status) every key of the
// task gets the terminal TTL, and the first terminal deadline wins, as in
// the memory store. A TTL of 0 means "never expire" (PERSIST).

// retainLua defines retain(meta, keys, active, final) for the task scripts.
const retainLua = `
local function retain(meta, ks, active, final)
  local ended = redis.call('HEXISTS', meta, 'terminal') == 1 or redis.call('HEXISTS', meta, 'ended') == 1
  for _, k in ipairs(ks) do
    if ended then
      if final > 0 then
        local cur = redis.call('PTTL', k)
        if cur == -1 or cur > final then
          redis.call('PEXPIRE', k, final)
        end
      else
        redis.call('PERSIST', k)
      end
    elseif active > 0 then
      redis.call('PEXPIRE', k, active)
    else
      redis.call('PERSIST', k)
    end
  end
end
`

// appendScript is EventStore.Append in one atomic step: it answers an
// append whose idempotency key the task holds with the event stored under
// it, refuses appends after the terminal event, adds the event (XADD *,
// with the key as a field when there is one) and records its key, trims
// the stream back to the cap once it exceeds cap+slack, forgetting the
// keys of the trimmed events and recording the highest trimmed id, marks
// the terminal event, applies the expiry convention and PUBLISHes
// "<taskId> <eventId>" on the change channel.
//
// We trim here rather than with XADD MAXLEN ~ because Redis does not
// advance XINFO's max-deleted-entry-id when it trims (checked on 7.0), and
// the retention gap needs the exact highest trimmed id.
//
// KEYS: events, meta, task, appends. ARGV: type, createdAt (unix ms),
// payload, terminal (1/0), cap (0 = none), slack, active TTL ms, terminal
// TTL ms, channel, taskId, idempotency key ("" = none). Reply: {"ok", id},
// {"terminal", terminal id} or {"held", id, type, createdAt, payload}. It
// also keeps the task's summary in meta current (summarizeLua, summary.go).
var appendScript = redis.NewScript(retainLua + summarizeLua + `
local key = ARGV[11]
if key ~= '' then
  local held = redis.call('HGET', KEYS[4], key)
  if held then
    local e = redis.call('XRANGE', KEYS[1], held, held)
    if e[1] then
      local typ, created, payload = '', '', ''
      local f = e[1][2]
      for i = 1, #f, 2 do
        if f[i] == 'type' then typ = f[i + 1]
        elseif f[i] == 'createdAt' then created = f[i + 1]
        elseif f[i] == 'payload' then payload = f[i + 1] end
      end
      return {'held', held, typ, created, payload}
    end
    redis.call('HDEL', KEYS[4], key)
  end
end
local term = redis.call('HGET', KEYS[2], 'terminal')
if term then
  return {'terminal', term}
end
local id
if key ~= '' then
  id = redis.call('XADD', KEYS[1], '*', 'type', ARGV[1], 'createdAt', ARGV[2], 'payload', ARGV[3], 'key', key)
  redis.call('HSET', KEYS[4], key, id)
else
  id = redis.call('XADD', KEYS[1], '*', 'type', ARGV[1], 'createdAt', ARGV[2], 'payload', ARGV[3])
end
local cap = tonumber(ARGV[5])
if cap > 0 then
  local len = redis.call('XLEN', KEYS[1])
  if len > cap + tonumber(ARGV[6]) then
    local gone = redis.call('XRANGE', KEYS[1], '-', '+', 'COUNT', len - cap)
    redis.call('XTRIM', KEYS[1], 'MAXLEN', cap)
    redis.call('HSET', KEYS[2], 'trimmed', gone[#gone][1])
    for _, e in ipairs(gone) do
      local f = e[2]
      for i = 1, #f, 2 do
        if f[i] == 'key' then redis.call('HDEL', KEYS[4], f[i + 1]) end
      end
    end
  end
end
if ARGV[4] == '1' then
  redis.call('HSET', KEYS[2], 'terminal', id)
end
summarize(KEYS[2], id, ARGV[1], ARGV[2], ARGV[3], ARGV[4] == '1')
retain(KEYS[2], KEYS, tonumber(ARGV[7]), tonumber(ARGV[8]))
redis.call('PUBLISH', ARGV[9], ARGV[10] .. ' ' .. id)
return {'ok', id}
`)

// readPageLua defines read_page(out, events, meta, start, count), the
// read of EventStore.Read: it appends to out the stream's markers and the
// page, read atomically so the gap and the end are judged against the same
// state, flat to keep decoding cheap: terminal id | false, trimmed id |
// false, then per event: id, type, createdAt, payload.
const readPageLua = `
local function read_page(out, events, meta, start, count)
  local m = redis.call('HMGET', meta, 'terminal', 'trimmed')
  out[#out + 1] = m[1]
  out[#out + 1] = m[2]
  local n = tonumber(count)
  if n > 0 then
    local entries = redis.call('XRANGE', events, start, '+', 'COUNT', n)
    for _, e in ipairs(entries) do
      local typ, created, payload = '', '', ''
      local f = e[2]
      for i = 1, #f, 2 do
        if f[i] == 'type' then typ = f[i + 1]
        elseif f[i] == 'createdAt' then created = f[i + 1]
        elseif f[i] == 'payload' then payload = f[i + 1] end
      end
      out[#out + 1] = e[1]
      out[#out + 1] = typ
      out[#out + 1] = created
      out[#out + 1] = payload
    end
  end
  return out
end
`

// readScript is EventStore.Read: read_page of one task.
// KEYS: events, meta. ARGV: start ("-" or "(id"), count.
var readScript = redis.NewScript(readPageLua + `
return read_page({}, KEYS[1], KEYS[2], ARGV[1], ARGV[2])
`)

// readTaskScript is EventStore.ReadTask: the task's record (the fields
// TaskRegistry.Get reads) followed by read_page, in one atomic step.
// KEYS: events, meta, task. ARGV: start, count.
// Reply: {false} for a missing task, else {status, cancel, reason,
// updated, rec, then read_page's reply}.
var readTaskScript = redis.NewScript(readPageLua + `
local t = redis.call('HMGET', KEYS[3], 'status', 'cancel', 'reason', 'updated', 'rec')
if not t[1] then
  return {false}
end
return read_page({t[1], t[2], t[3], t[4], t[5]}, KEYS[1], KEYS[2], ARGV[1], ARGV[2])
`)

// putTaskLua defines put_task(task, meta, rec, status, cancel, reason,
// updated, active, final, ended): it stores a new task record unless its
// key exists. A record equal to the stored one (a retry of the call that
// stored it) counts as stored. Reply: 1 stored, 0 taken.
const putTaskLua = `
local function put_task(task, meta, rec, status, cancel, reason, updated, active, final, ended)
  if redis.call('EXISTS', task) == 1 then
    if redis.call('HGET', task, 'rec') == rec then
      return 1
    end
    return 0
  end
  redis.call('HSET', task, 'rec', rec, 'status', status, 'cancel', cancel, 'reason', reason, 'updated', updated)
  if ended == '1' then
    redis.call('HSET', meta, 'ended', '1')
  end
  retain(meta, {task, meta}, tonumber(active), tonumber(final))
  return 1
end
`

// putTaskScript is put_task.
// KEYS: task, events, meta, appends. ARGV: rec, status, cancel, reason, updated,
// active TTL ms, terminal TTL ms, ended (1 when the status is terminal).
// Reply: 1 stored, 0 taken.
var putTaskScript = redis.NewScript(retainLua + putTaskLua + `
return put_task(KEYS[1], KEYS[3], ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[7], ARGV[8])
`)

// createTaskScript is a new task on a single Redis in one script: put_task,
// claim and index_add, run in that order as the pipeline of the three
// scripts would run them: each runs whatever the others answered, and an
// error in one (a key of the wrong type) is that one's reply, so the
// caller reads the three replies as it reads theirs; but in one EVALSHA
// rather than three. Its keys span several hash tags, so it is never sent
// to a cluster or a ring.
// KEYS: putTaskScript's, then idem, owner index. ARGV: putTaskScript's,
// then claimScript's, then indexAddScript's. Reply: {put_task's, claim's,
// index_add's}, each an error reply when it failed.
var createTaskScript = redis.NewScript(retainLua + putTaskLua + claimLua + indexAddLua + `
local function reply(ok, res)
  if ok then
    return res
  end
  if type(res) == 'table' and res.err then
    return res
  end
  return {err = tostring(res)}
end
return {
  reply(pcall(put_task, KEYS[1], KEYS[3], ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[7], ARGV[8])),
  reply(pcall(claim, KEYS[5], ARGV[9], ARGV[10])),
  reply(pcall(index_add, KEYS[6], ARGV[11], ARGV[12], ARGV[13]))
}
`)

// updateTaskScript applies a status change or a cancellation request. The
// transition rule comes from Go (contracts.TaskStatus) as the terminal
// statuses and the statuses the move is allowed from, so Lua holds no copy.
//
// KEYS: task, events, meta, appends. ARGV: mode ("status" | "cancel"), next status
// or reason, updated, active TTL ms, terminal TTL ms, then "T:<status>" per
// terminal status and "F:<status>" per allowed origin.
// Reply: {outcome, status, cancel, reason, updated, rec}; outcome is "ok",
// "same" (nothing changed), "missing", "terminal" or "invalid".
var updateTaskScript = redis.NewScript(retainLua + `
local function record(outcome)
  local g = redis.call('HMGET', KEYS[1], 'status', 'cancel', 'reason', 'updated', 'rec')
  return {outcome, g[1], g[2], g[3], g[4], g[5]}
end
local cur = redis.call('HGET', KEYS[1], 'status')
if not cur then
  return {'missing'}
end
local terminal, allowed = {}, {}
for i = 6, #ARGV do
  local kind, s = string.sub(ARGV[i], 1, 1), string.sub(ARGV[i], 3)
  if kind == 'T' then terminal[s] = true else allowed[s] = true end
end
if ARGV[1] == 'status' then
  local nxt = ARGV[2]
  if nxt == cur then
    return record('same')
  end
  if terminal[cur] then
    return record('terminal')
  end
  if not allowed[cur] then
    return record('invalid')
  end
  redis.call('HSET', KEYS[1], 'status', nxt, 'updated', ARGV[3])
  if terminal[nxt] then
    redis.call('HSET', KEYS[3], 'ended', '1')
  end
else
  if terminal[cur] then
    return record('terminal')
  end
  if redis.call('HGET', KEYS[1], 'cancel') == '1' then
    return record('same')
  end
  redis.call('HSET', KEYS[1], 'cancel', '1', 'reason', ARGV[2], 'updated', ARGV[3])
end
retain(KEYS[3], KEYS, tonumber(ARGV[4]), tonumber(ARGV[5]))
return record('ok')
`)

// claimLua defines claim(idem, taskId, ttl): it claims an owner-scoped
// idempotency key for a task id; a key the task id already holds (a retry
// of the call that claimed it) counts as claimed. TTL in ms, 0 = none.
// Reply: the task id already holding the key, or false after claiming it.
const claimLua = `
local function claim(idem, id, ttl)
  local cur = redis.call('GET', idem)
  if cur == id then
    return false
  end
  if cur then
    return cur
  end
  ttl = tonumber(ttl)
  if ttl > 0 then
    redis.call('SET', idem, id, 'PX', ttl)
  else
    redis.call('SET', idem, id)
  end
  return false
end
`

// claimScript is claim.
// KEYS: idem. ARGV: taskId, TTL ms (0 = none).
// Reply: the task id already holding the key, or nil after claiming it.
var claimScript = redis.NewScript(claimLua + `
return claim(KEYS[1], ARGV[1], ARGV[2])
`)

// releaseScript deletes an idempotency key if it still names the task id.
// KEYS: idem. ARGV: taskId.
var releaseScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
`)

// touchIdemScript gives an idempotency key that still names the task id
// the TTL of its task: the active TTL, or once ended the terminal TTL where
// the first deadline wins. KEYS: idem. ARGV: taskId, TTL ms (0 = none),
// ended (1/0).
var touchIdemScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return 0
end
local ttl = tonumber(ARGV[2])
if ttl <= 0 then
  return redis.call('PERSIST', KEYS[1])
end
if ARGV[3] == '1' then
  local cur = redis.call('PTTL', KEYS[1])
  if cur ~= -1 and cur <= ttl then
    return 0
  end
end
return redis.call('PEXPIRE', KEYS[1], ttl)
`)

// suspFields is the field order every suspension reply uses.
const suspFieldsLua = `
local function susp(k)
  return redis.call('HMGET', k, 'status', 'handoff', 'action', 'resolved', 'rec')
end
local function final(k, ttl)
  if ttl > 0 then
    local cur = redis.call('PTTL', k)
    if cur == -1 or cur > ttl then
      redis.call('PEXPIRE', k, ttl)
    end
  else
    redis.call('PERSIST', k)
  end
end
`

// createSuspScript stores a new OPEN suspension and indexes its deadline.
// A record equal to the stored one (a retry of the call that stored it)
// counts as stored.
// KEYS: record, open index. ARGV: rec, handoff, action, resolved, deadline
// (unix µs, 0 = none), member, active TTL ms. Reply: 1 stored, 0 taken.
var createSuspScript = redis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 1 then
  if redis.call('HGET', KEYS[1], 'rec') == ARGV[1] then
    return 1
  end
  return 0
end
redis.call('HSET', KEYS[1], 'rec', ARGV[1], 'status', 'OPEN', 'handoff', ARGV[2], 'action', ARGV[3], 'resolved', ARGV[4])
if tonumber(ARGV[5]) > 0 then
  redis.call('ZADD', KEYS[2], ARGV[5], ARGV[6])
end
if tonumber(ARGV[7]) > 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[7])
end
return 1
`)

// resolveSuspScript is the compare-and-set of Resolve: it applies the
// resolution only to an OPEN suspension; a suspension that already holds
// exactly this resolution (status, action and time: a retry of the call
// that applied it) answers "won" again. RESOLVED sets the action, the
// resolution time and handoff PENDING and indexes the pending handoff;
// EXPIRED and CANCELLED set the status and time and start the terminal TTL.
// The suspension leaves the open index whatever the outcome.
// KEYS: record, open index, pending index. ARGV: status, action, at
// (RFC 3339), at (unix µs), member, active TTL ms, terminal TTL ms.
// Reply: {outcome, status, handoff, action, resolved, rec}; outcome is
// "won", "lost" or "missing".
var resolveSuspScript = redis.NewScript(suspFieldsLua + `
local f = susp(KEYS[1])
if not f[1] then
  redis.call('ZREM', KEYS[2], ARGV[5])
  return {'missing'}
end
if f[1] ~= 'OPEN' then
  redis.call('ZREM', KEYS[2], ARGV[5])
  if f[1] == ARGV[1] and f[3] == ARGV[2] and f[4] == ARGV[3] then
    return {'won', f[1], f[2], f[3], f[4], f[5]}
  end
  return {'lost', f[1], f[2], f[3], f[4], f[5]}
end
redis.call('ZREM', KEYS[2], ARGV[5])
if ARGV[1] == 'RESOLVED' then
  redis.call('HSET', KEYS[1], 'status', 'RESOLVED', 'action', ARGV[2], 'resolved', ARGV[3], 'handoff', 'PENDING')
  redis.call('ZADD', KEYS[3], ARGV[4], ARGV[5])
  if tonumber(ARGV[6]) > 0 then
    redis.call('PEXPIRE', KEYS[1], ARGV[6])
  end
else
  redis.call('HSET', KEYS[1], 'status', ARGV[1], 'resolved', ARGV[3])
  final(KEYS[1], tonumber(ARGV[7]))
end
f = susp(KEYS[1])
return {'won', f[1], f[2], f[3], f[4], f[5]}
`)

// expireSuspScript is ExpireOpen for one batch: every listed suspension
// that is still OPEN with a deadline at or before the cut-off becomes
// EXPIRED (resolution time = the cut-off) and starts its terminal TTL;
// every listed member leaves the open index unless its deadline is later.
// KEYS: open index, then the records. ARGV: cut-off (unix µs), cut-off
// (RFC 3339), terminal TTL ms, then the members in KEYS order.
// Reply: how many it expired.
var expireSuspScript = redis.NewScript(suspFieldsLua + `
local cut, n = tonumber(ARGV[1]), 0
for i = 2, #KEYS do
  local m = ARGV[i + 2]
  local score = redis.call('ZSCORE', KEYS[1], m)
  if score and tonumber(score) <= cut then
    redis.call('ZREM', KEYS[1], m)
    if redis.call('HGET', KEYS[i], 'status') == 'OPEN' then
      redis.call('HSET', KEYS[i], 'status', 'EXPIRED', 'resolved', ARGV[2])
      final(KEYS[i], tonumber(ARGV[3]))
      n = n + 1
    end
  end
end
return n
`)

// dispatchSuspScript is MarkResumeDispatched: handoff DISPATCHED for a
// RESOLVED suspension, which leaves the pending index and starts its
// terminal TTL. KEYS: record, pending index. ARGV: member, terminal TTL ms.
// Reply: {outcome, status, handoff, action, resolved, rec}; outcome is
// "ok", "missing" or "invalid".
var dispatchSuspScript = redis.NewScript(suspFieldsLua + `
local f = susp(KEYS[1])
if not f[1] then
  redis.call('ZREM', KEYS[2], ARGV[1])
  return {'missing'}
end
if f[1] ~= 'RESOLVED' then
  return {'invalid', f[1], f[2], f[3], f[4], f[5]}
end
redis.call('HSET', KEYS[1], 'handoff', 'DISPATCHED')
redis.call('ZREM', KEYS[2], ARGV[1])
final(KEYS[1], tonumber(ARGV[2]))
f = susp(KEYS[1])
return {'ok', f[1], f[2], f[3], f[4], f[5]}
`)

// saveRcptScript stores a receipt unless a live one exists (one whose
// expiry is unset or after now); an expired one still in Redis is
// replaced, and one equal to the receipt (a retry of the call that stored
// it) counts as stored. KEYS: record, expiry index. ARGV: rec, expiry (unix µs, 0 =
// none), now (unix µs), member, TTL ms (0 = none).
// Reply: nil when stored, else the existing receipt's JSON.
var saveRcptScript = redis.NewScript(`
local cur = redis.call('HMGET', KEYS[1], 'rec', 'exp')
if cur[1] == ARGV[1] then
  return false
end
if cur[1] then
  local e = tonumber(cur[2]) or 0
  if e == 0 or e > tonumber(ARGV[3]) then
    return cur[1]
  end
end
redis.call('HSET', KEYS[1], 'rec', ARGV[1], 'exp', ARGV[2])
if tonumber(ARGV[2]) > 0 then
  redis.call('ZADD', KEYS[2], ARGV[2], ARGV[4])
else
  redis.call('ZREM', KEYS[2], ARGV[4])
end
if tonumber(ARGV[5]) > 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[5])
else
  redis.call('PERSIST', KEYS[1])
end
return false
`)

// deleteRcptScript is DeleteExpired for one batch. A listed receipt whose
// expiry is at or before the cut-off is deleted and counted, also when
// Redis already dropped it by TTL (its index entry is what is left); one
// saved again with a later expiry is re-indexed and kept.
// KEYS: expiry index, then the records. ARGV: cut-off (unix µs), then the
// members in KEYS order. Reply: how many it removed.
var deleteRcptScript = redis.NewScript(`
local cut, n = tonumber(ARGV[1]), 0
for i = 2, #KEYS do
  local m = ARGV[i]
  local e = redis.call('HGET', KEYS[i], 'exp')
  if not e then
    if redis.call('ZREM', KEYS[1], m) == 1 then
      n = n + 1
    end
  else
    e = tonumber(e)
    if e > cut then
      redis.call('ZADD', KEYS[1], e, m)
    elseif e == 0 then
      redis.call('ZREM', KEYS[1], m)
    else
      redis.call('DEL', KEYS[i])
      redis.call('ZREM', KEYS[1], m)
      n = n + 1
    end
  end
end
return n
`)

// nowLua defines now(): the Redis server's time in unix milliseconds. The
// lease scripts take their deadlines from it, so the instances' clocks
// need not agree.
const nowLua = `
local function now()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
`

// acquireLeaseScript gives holder the lease unless another holder's lease
// has not expired. KEYS: deadlines, holders. ARGV: taskId, holder, TTL ms.
// Reply: 1 acquired (or renewed, or taken over), 0 held by another.
var acquireLeaseScript = redis.NewScript(nowLua + `
local n = now()
local cur = redis.call('HGET', KEYS[2], ARGV[1])
if cur and cur ~= ARGV[2] then
  local d = redis.call('ZSCORE', KEYS[1], ARGV[1])
  if d and tonumber(d) > n then
    return 0
  end
end
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
redis.call('ZADD', KEYS[1], n + tonumber(ARGV[3]), ARGV[1])
return 1
`)

// renewLeaseScript extends the leases holder holds (expired ones too, when
// nobody took them over); TTL 0 sets their deadline to now (expired:
// handed to the next take).
// KEYS: deadlines, holders. ARGV: holder, TTL ms, task ids...
// Reply: the ids not renewed.
var renewLeaseScript = redis.NewScript(nowLua + `
local n = now()
local ttl = tonumber(ARGV[2])
local dl = n
if ttl > 0 then
  dl = n + ttl
end
local lost = {}
for i = 3, #ARGV do
  local id = ARGV[i]
  if redis.call('ZSCORE', KEYS[1], id) and redis.call('HGET', KEYS[2], id) == ARGV[1] then
    redis.call('ZADD', KEYS[1], dl, id)
  else
    lost[#lost + 1] = id
  end
end
return lost
`)

// releaseLeaseScript deletes holder's lease. KEYS: deadlines, holders.
// ARGV: taskId, holder. Reply: 1 deleted, 0 not holder's.
var releaseLeaseScript = redis.NewScript(`
if redis.call('HGET', KEYS[2], ARGV[1]) ~= ARGV[2] then
  return 0
end
redis.call('HDEL', KEYS[2], ARGV[1])
redis.call('ZREM', KEYS[1], ARGV[1])
return 1
`)

// takeExpiredScript gives holder up to limit expired leases, oldest
// deadline first. KEYS: deadlines, holders. ARGV: holder, TTL ms, limit.
// Reply: per lease taken, its task id, previous holder ("" when unknown)
// and previous deadline (unix ms).
var takeExpiredScript = redis.NewScript(nowLua + `
local n = now()
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', n, 'WITHSCORES', 'LIMIT', 0, tonumber(ARGV[3]))
local out = {}
for i = 1, #due, 2 do
  local id = due[i]
  out[#out + 1] = id
  out[#out + 1] = redis.call('HGET', KEYS[2], id) or ''
  out[#out + 1] = due[i + 1]
  redis.call('HSET', KEYS[2], id, ARGV[1])
  redis.call('ZADD', KEYS[1], n + tonumber(ARGV[2]), id)
end
return out
`)

package redisstore

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/taskbridge/taskbridge-fiber/contracts"
)

var _ contracts.SummaryReader = (*EventStore)(nil)

// summarizeLua defines summarize(meta, id, type, createdAt, payload,
// terminal) for the append script: it folds the appended event into the
// summary fields of the task's meta hash, as contracts.TaskLogSummary.Apply
// does in Go, in the same atomic step as the append:
//
//	last     id of the latest event
//	lastAt   its createdAt (unix ms)
//	prog     payload of the latest TASK_PROGRESS
//	susp     payload of the open TASK_SUSPENDED (removed by the
//	         TASK_ACTION_ACCEPTED with its suspendId, or the terminal event)
//	endType  type of the terminal event
//	end      payload of the terminal event
const summarizeLua = `
local function summarize(meta, id, typ, created, payload, terminal)
  local f = {'last', id, 'lastAt', created}
  if typ == 'TASK_PROGRESS' then
    f[#f + 1] = 'prog'
    f[#f + 1] = payload
  elseif typ == 'TASK_SUSPENDED' then
    f[#f + 1] = 'susp'
    f[#f + 1] = payload
  elseif typ == 'TASK_ACTION_ACCEPTED' then
    local open = redis.call('HGET', meta, 'susp')
    if open and cjson.decode(open)['suspendId'] == cjson.decode(payload)['suspendId'] then
      redis.call('HDEL', meta, 'susp')
    end
  elseif terminal then
    redis.call('HDEL', meta, 'susp')
    f[#f + 1] = 'endType'
    f[#f + 1] = typ
    f[#f + 1] = 'end'
    f[#f + 1] = payload
  end
  redis.call('HSET', meta, unpack(f))
end
`

// Summaries implements contracts.SummaryReader: one HMGET of each task's
// meta hash, all in one pipeline (one round trip per Redis node). The
// append script keeps the fields current atomically with every append
// (see summarizeLua), so a summary is never behind or ahead of the log.
// Tasks whose keys expired, or that have no events, have the zero summary.
// Tasks appended to by a version of this package without summaries show
// none until their next append.
func (s *EventStore) Summaries(ctx context.Context, taskIDs []string) ([]contracts.TaskLogSummary, error) {
	out := make([]contracts.TaskLogSummary, len(taskIDs))
	if len(taskIDs) == 0 {
		return out, nil
	}
	pipe := s.client.Pipeline()
	cmds := make([]*redis.SliceCmd, len(taskIDs))
	for i, id := range taskIDs {
		if id != "" {
			cmds[i] = pipe.HMGet(ctx, s.keys.meta(id), "last", "lastAt", "prog", "susp", "endType", "end")
		}
	}
	if _, err := pipe.Exec(ctx); err != nil && err != redis.Nil {
		return nil, fmt.Errorf("redisstore: read summaries: %w", err)
	}
	for i, cmd := range cmds {
		if cmd == nil {
			continue
		}
		vals, err := cmd.Result()
		if err != nil {
			return nil, fmt.Errorf("redisstore: read summary of %q: %w", taskIDs[i], err)
		}
		if out[i], err = decodeSummary(vals); err != nil {
			return nil, fmt.Errorf("redisstore: read summary of %q: %w", taskIDs[i], err)
		}
	}
	return out, nil
}

// decodeSummary rebuilds a summary from [last, lastAt, prog, susp, endType,
// end].
func decodeSummary(vals []any) (contracts.TaskLogSummary, error) {
	var sum contracts.TaskLogSummary
	last := str(vals[0])
	if last == "" {
		return sum, nil
	}
	id, err := contracts.ParseEventID(last)
	if err != nil {
		return sum, fmt.Errorf("last event id: %w", err)
	}
	msec, err := strconv.ParseInt(str(vals[1]), 10, 64)
	if err != nil {
		return sum, fmt.Errorf("last event time %q: %w", str(vals[1]), err)
	}
	sum.LastEventID, sum.LastEventAt = id, time.UnixMilli(msec).UTC()
	sum.Progress = rawOrNil(vals[2])
	sum.Suspended = rawOrNil(vals[3])
	sum.TerminalType = contracts.EventType(str(vals[4]))
	sum.Terminal = rawOrNil(vals[5])
	return sum, nil
}

func rawOrNil(v any) []byte {
	if s := str(v); s != "" {
		return []byte(s)
	}
	return nil
}

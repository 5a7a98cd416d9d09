package redisstore

import (
	"context"
	"fmt"

	"github.com/redis/go-redis/v9"

	"github.com/taskbridge/taskbridge-fiber/contracts"
)

var _ contracts.BatchReader = (*EventStore)(nil)

// ReadBatch implements contracts.BatchReader: the reads of reqs go to Redis
// as one pipeline of the script Read runs (EVALSHA), so a batch costs one
// round trip per Redis node instead of one per request. Each read is atomic
// on its own, exactly as Read; a cluster client splits the pipeline by slot
// (every task's keys share one hash tag). When the server lacks the script
// in its cache (restarted, flushed, a new cluster node) the requests it
// refused are sent once more with EVAL, which caches it. Errors are per
// request: a failed or undecodable reply sets errs[i] and leaves pages[i]
// zero; a transport failure sets it for every request it hit.
func (s *EventStore) ReadBatch(ctx context.Context, reqs []contracts.ReadRequest, pages []contracts.EventPage, errs []error) {
	pages, errs = pages[:len(reqs)], errs[:len(reqs)]
	cmds := make([]*redis.Cmd, len(reqs))
	keys := make([]string, 2*len(reqs))
	var pipe redis.Pipeliner
	for i, r := range reqs {
		pages[i], errs[i] = contracts.EventPage{}, nil
		if r.TaskID == "" {
			continue // an empty page, as Read returns
		}
		if pipe == nil {
			pipe = s.client.Pipeline()
		}
		k := keys[2*i : 2*i+2 : 2*i+2]
		k[0], k[1] = s.keys.events(r.TaskID), s.keys.meta(r.TaskID)
		var buf [48]byte
		cmds[i] = readScript.EvalSha(ctx, pipe, k, readStart(buf[:0], r.After), max(r.Limit, 0))
	}
	if pipe == nil {
		return
	}
	_, _ = pipe.Exec(ctx) // errors are read per command below

	var retry redis.Pipeliner
	for i, cmd := range cmds {
		if cmd == nil || !redis.HasErrorPrefix(cmd.Err(), "NOSCRIPT") {
			continue
		}
		if retry == nil {
			retry = s.client.Pipeline()
		}
		r := reqs[i]
		var buf [48]byte
		cmds[i] = readScript.Eval(ctx, retry, keys[2*i:2*i+2:2*i+2], readStart(buf[:0], r.After), max(r.Limit, 0))
	}
	if retry != nil {
		_, _ = retry.Exec(ctx)
	}

	for i, cmd := range cmds {
		if cmd == nil {
			continue
		}
		r := reqs[i]
		raw, err := cmd.Slice()
		if err != nil {
			errs[i] = fmt.Errorf("redisstore: read %q: %w", r.TaskID, err)
			continue
		}
		pages[i], errs[i] = decodePage(r.TaskID, r.After, raw)
	}
}

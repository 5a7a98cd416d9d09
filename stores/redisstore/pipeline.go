package redisstore

import (
	"context"

	"github.com/redis/go-redis/v9"
)

// scriptCall is one run of a script in a pipeline (runScripts): its keys
// and arguments, and once sent its command, whose reply or error is the
// call's.
type scriptCall struct {
	script *redis.Script
	keys   []string
	args   []any
	cmd    *redis.Cmd
}

// runScripts sends calls as one pipeline of EVALSHAs, one round trip (a
// cluster client splits it by node), and sends the ones the server refused
// with NOSCRIPT (restarted, flushed, a new node) once more with EVAL, which
// caches them, in the order given. Errors are per call.
func runScripts(ctx context.Context, client redis.UniversalClient, calls []scriptCall) {
	pipe := client.Pipeline()
	for i := range calls {
		c := &calls[i]
		c.cmd = c.script.EvalSha(ctx, pipe, c.keys, c.args...)
	}
	_, _ = pipe.Exec(ctx) // errors are read per command
	var retry redis.Pipeliner
	for i := range calls {
		c := &calls[i]
		if !redis.HasErrorPrefix(c.cmd.Err(), "NOSCRIPT") {
			continue
		}
		if retry == nil {
			retry = client.Pipeline()
		}
		c.cmd = c.script.Eval(ctx, retry, c.keys, c.args...)
	}
	if retry != nil {
		_, _ = retry.Exec(ctx)
	}
}

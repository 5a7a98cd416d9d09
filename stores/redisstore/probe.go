package redisstore

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/taskbridge/taskbridge-fiber/observe"
)

// DefaultProbeTimeout bounds a Probe's PING when NewProbe gets no timeout.
const DefaultProbeTimeout = time.Second

// Probe is the readiness check of the Redis stores: a PING bounded by a
// timeout. It is usable as interface{ Check(ctx context.Context) error }
// (the composite readiness probe of package observe) and is itself an
// observe.ReadinessProbe. A Probe is safe for concurrent use.
type Probe struct {
	client  redis.UniversalClient
	timeout time.Duration
}

var _ observe.ReadinessProbe = (*Probe)(nil)

// NewProbe returns a Probe that PINGs through client, giving up after
// timeout (0 or less: DefaultProbeTimeout).
func NewProbe(client redis.UniversalClient, timeout time.Duration) *Probe {
	if timeout <= 0 {
		timeout = DefaultProbeTimeout
	}
	return &Probe{client: client, timeout: timeout}
}

// errProbeTimeout reports a PING that did not answer within the timeout.
var errProbeTimeout = errors.New("redisstore: redis did not answer PING in time")

// Check PINGs Redis and returns nil when it answers PONG within the
// probe's timeout (or ctx's deadline, if earlier). It returns within that
// time even when the client ignores context deadlines: the PING then
// finishes in the background within the client's own read timeout.
func (p *Probe) Check(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, p.timeout)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- p.client.Ping(ctx).Err() }()
	select {
	case err := <-done:
		if err != nil {
			return fmt.Errorf("redisstore: ping: %w", err)
		}
		return nil
	case <-ctx.Done():
		return fmt.Errorf("%w (%s): %w", errProbeTimeout, p.timeout, ctx.Err())
	}
}

// CheckReadiness implements observe.ReadinessProbe with Check; details
// carry {"redis": "ok"} or {"redis": "unavailable"}.
func (p *Probe) CheckReadiness(ctx context.Context) (bool, map[string]any) {
	if err := p.Check(ctx); err != nil {
		return false, map[string]any{"redis": "unavailable"}
	}
	return true, map[string]any{"redis": "ok"}
}

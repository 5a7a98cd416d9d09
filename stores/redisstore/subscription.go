package redisstore

import (
	"context"
	"errors"
	"net"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/taskbridge/taskbridge-fiber/observe"
)

// Reconnect backoff of the long-lived subscriptions.
const (
	subscribeMinBackoff = 50 * time.Millisecond
	subscribeMaxBackoff = 2 * time.Second
)

// subscription keeps one SUBSCRIBE connection to a channel open for a
// long-lived consumer (the change feed, the cancel relay): a silent
// connection is pinged, a lost one is reopened with a doubling backoff, and
// it gives up only when the Redis client is closed. The consumer's
// callbacks run on the goroutine that calls run.
type subscription struct {
	client  redis.UniversalClient
	channel string
	ping    time.Duration // silence before a ping; also the ping's timeout
	log     *observe.Logger
	name    string // the consumer, in logs and errors: "change feed"

	// subscribed is called when the subscription is confirmed; an error
	// ends the session (it is reopened after the backoff). Only a session
	// whose subscribed call succeeded resets the backoff.
	subscribed func(ctx context.Context) error
	// message is called for each message; an error ends the session.
	message func(ctx context.Context, payload string) error
	// lost, when not nil, is called after every session ended.
	lost func()
}

// run keeps the subscription open until ctx ends (it returns nil) or the
// Redis client is closed (it returns that error, wrapping redis.ErrClosed).
func (s *subscription) run(ctx context.Context) error {
	backoff := subscribeMinBackoff
	for {
		confirmed, err := s.session(ctx)
		if s.lost != nil {
			s.lost()
		}
		if ctx.Err() != nil {
			return nil
		}
		if errors.Is(err, redis.ErrClosed) {
			return err
		}
		if confirmed {
			backoff = subscribeMinBackoff
		}
		s.log.Warn("redisstore: "+s.name+" subscription lost; reconnecting", observe.Entry{
			Transport: observe.TransportInternal,
			Outcome:   "reconnect",
			Details:   map[string]any{"channel": s.channel, "backoff": backoff.String()},
			Err:       err,
		})
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
		backoff = min(2*backoff, subscribeMaxBackoff)
	}
}

// session runs one subscription until it fails or ctx ends. It reports
// whether the subscription was confirmed and s.subscribed succeeded. A
// silent connection is pinged after s.ping; no reply within s.ping more
// ends the session.
func (s *subscription) session(ctx context.Context) (confirmed bool, err error) {
	ps := s.client.Subscribe(ctx, s.channel)
	unwatch := context.AfterFunc(ctx, func() { _ = ps.Close() })
	defer func() {
		unwatch()
		_ = ps.Close()
	}()
	pinged := false
	for {
		msg, err := ps.ReceiveTimeout(ctx, s.ping)
		if err != nil {
			if ctx.Err() != nil {
				return confirmed, ctx.Err()
			}
			if !isTimeout(err) {
				return confirmed, err
			}
			if pinged {
				return confirmed, errors.New("redisstore: " + s.name + ": no reply to ping")
			}
			pingCtx, cancel := context.WithTimeout(ctx, s.ping)
			err = ps.Ping(pingCtx)
			cancel()
			if err != nil {
				return confirmed, err
			}
			pinged = true
			continue
		}
		pinged = false
		switch m := msg.(type) {
		case *redis.Subscription:
			if m.Kind == "subscribe" && m.Channel == s.channel {
				if err := s.subscribed(ctx); err != nil {
					return confirmed, err
				}
				confirmed = true
			}
		case *redis.Message:
			if err := s.message(ctx, m.Payload); err != nil {
				return confirmed, err
			}
		}
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

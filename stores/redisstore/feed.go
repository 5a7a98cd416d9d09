package redisstore

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/taskbridge/taskbridge-fiber/contracts"
	"github.com/taskbridge/taskbridge-fiber/observe"
)

// feed is the change feed of one EventStore: one goroutine holding one
// SUBSCRIBE connection, fanning the notices out to the registered
// listeners. The goroutine runs while at least one listener is registered;
// the first listen starts it and the last one to leave stops it and waits
// for it, so no goroutine outlives the Listen calls.
type feed struct {
	client  redis.UniversalClient
	channel string
	ping    time.Duration
	log     *observe.Logger

	mu        sync.Mutex // guards everything below; held while calling listeners
	listeners map[*listener]struct{}
	live      bool   // the subscription is confirmed and has not dropped since
	gen       uint64 // generation of the running goroutine; stale ones do not dispatch
	stop      context.CancelFunc
	done      chan struct{}
	failed    chan struct{} // closed when the running goroutine gave up for good
	err       error         // why it gave up; set before failed is closed
}

type listener struct {
	fn     func(contracts.Change)
	resync bool // notices may have been lost since fn was registered
}

func newFeed(client redis.UniversalClient, channel string, cfg config) *feed {
	return &feed{
		client:    client,
		channel:   channel,
		ping:      cfg.pingEvery,
		log:       cfg.log,
		listeners: make(map[*listener]struct{}),
	}
}

func (f *feed) listen(ctx context.Context, fn func(contracts.Change)) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	l := &listener{fn: fn}
	f.mu.Lock()
	l.resync = !f.live
	f.listeners[l] = struct{}{}
	if f.live {
		// Already subscribed: announce it now (contracts.ChangeFeed); a
		// listener registered before confirmation hears it from confirm.
		fn(contracts.Change{Resync: true})
	}
	if f.stop == nil {
		runCtx, stop := context.WithCancel(context.WithoutCancel(ctx))
		f.gen++
		f.stop, f.done, f.failed, f.err = stop, make(chan struct{}), make(chan struct{}), nil
		go f.run(runCtx, f.gen, f.done, f.failed)
	}
	failed := f.failed
	f.mu.Unlock()

	var err error
	select {
	case <-ctx.Done():
		err = ctx.Err()
	case <-failed:
		f.mu.Lock()
		err = f.err
		f.mu.Unlock()
	}

	f.mu.Lock()
	delete(f.listeners, l)
	var stop context.CancelFunc
	var done chan struct{}
	if len(f.listeners) == 0 {
		stop, done = f.stop, f.done
		f.stop, f.done, f.live = nil, nil, false
		f.gen++ // the stopping goroutine must not dispatch to later listeners
	}
	f.mu.Unlock()
	if stop != nil {
		stop()
		<-done
	}
	return err
}

// run keeps the subscription open until ctx ends. It gives up only when
// the client is closed: then it records the error and closes failed, which
// ends every Listen of this generation.
func (f *feed) run(ctx context.Context, gen uint64, done, failed chan struct{}) {
	defer close(done)
	sub := subscription{
		client: f.client, channel: f.channel, ping: f.ping, log: f.log, name: "change feed",
		subscribed: func(context.Context) error {
			f.confirm(gen)
			return nil
		},
		message: func(_ context.Context, payload string) error {
			f.dispatch(gen, payload)
			return nil
		},
		lost: func() { f.lost(gen) },
	}
	if err := sub.run(ctx); err != nil {
		f.mu.Lock()
		f.err = fmt.Errorf("redisstore: change feed: the Redis client is closed: %w", err)
		f.mu.Unlock()
		close(failed)
	}
}

// confirm marks the subscription live and sends Resync to every listener
// that may have missed notices.
func (f *feed) confirm(gen uint64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if gen != f.gen {
		return
	}
	f.live = true
	for l := range f.listeners {
		if l.resync {
			l.resync = false
			l.fn(contracts.Change{Resync: true})
		}
	}
}

// lost marks the subscription down: every current listener gets a Resync
// once it is back.
func (f *feed) lost(gen uint64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if gen != f.gen {
		return
	}
	f.live = false
	for l := range f.listeners {
		l.resync = true
	}
}

// dispatch parses "<taskId> <eventId>" and hands it to every listener.
func (f *feed) dispatch(gen uint64, payload string) {
	sp := strings.LastIndexByte(payload, ' ')
	if sp <= 0 {
		f.log.Warn("redisstore: malformed change notice ignored", observe.Entry{
			Transport: observe.TransportInternal, Details: map[string]any{"notice": payload}})
		return
	}
	id, err := contracts.ParseEventID(payload[sp+1:])
	if err != nil {
		f.log.Warn("redisstore: malformed change notice ignored", observe.Entry{
			Transport: observe.TransportInternal, TaskID: payload[:sp], Err: err})
		return
	}
	c := contracts.Change{TaskID: payload[:sp], LastEventID: id}
	f.mu.Lock()
	defer f.mu.Unlock()
	if gen != f.gen {
		return
	}
	for l := range f.listeners {
		if !l.resync { // a listener awaiting Resync will re-read anyway
			l.fn(c)
		}
	}
}

package orchestration_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/taskbridge/taskbridge-fiber/contracts"
	"github.com/taskbridge/taskbridge-fiber/orchestration"
)

// manualFeed is a ChangeFeed driven by the test.
type manualFeed struct {
	ready chan func(contracts.Change)
}

func (f *manualFeed) Listen(ctx context.Context, fn func(contracts.Change)) error {
	f.ready <- fn
	<-ctx.Done()
	return ctx.Err()
}

func startManual(t *testing.T) (*orchestration.FeedWaiter, func(contracts.Change), context.CancelFunc, chan error) {
	t.Helper()
	feed := &manualFeed{ready: make(chan func(contracts.Change), 1)}
	fw := orchestration.NewFeedWaiter(feed)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- fw.Run(ctx) }()
	fn := recv(t, feed.ready, "listen")
	t.Cleanup(func() {
		cancel()
		<-done
	})
	return fw, fn, cancel, done
}

func closed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

func TestFeedWaiterWakesWatchersOfTheTask(t *testing.T) {
	fw, notify, _, _ := startManual(t)
	a1, releaseA1 := fw.Watch("a")
	a2, releaseA2 := fw.Watch("a")
	b, releaseB := fw.Watch("b")
	defer releaseB()
	assert.Equal(t, 3, orchestration.Watching(fw))

	notify(contracts.Change{TaskID: "a", LastEventID: contracts.EventID{Ms: 1}})
	assert.True(t, closed(a1))
	assert.True(t, closed(a2))
	assert.False(t, closed(b))
	releaseA1()
	releaseA2()
	releaseA1() // idempotent
	assert.Equal(t, 1, orchestration.Watching(fw))

	// Watches are one-shot: a new watch waits for the next change.
	a3, releaseA3 := fw.Watch("a")
	assert.False(t, closed(a3))
	releaseA3()
	notify(contracts.Change{TaskID: "a"})
	assert.False(t, closed(a3), "a released watch is not closed")
}

func TestFeedWaiterResyncWakesAll(t *testing.T) {
	fw, notify, _, _ := startManual(t)
	a, ra := fw.Watch("a")
	b, rb := fw.Watch("b")
	defer ra()
	defer rb()
	notify(contracts.Change{Resync: true})
	assert.True(t, closed(a))
	assert.True(t, closed(b))
	assert.Zero(t, orchestration.Watching(fw))
}

func TestFeedWaiterRunEndClosesWatches(t *testing.T) {
	fw, _, cancel, done := startManual(t)
	a, ra := fw.Watch("a")
	defer ra()
	cancel()
	err := recv(t, done, "run end")
	require.ErrorIs(t, err, context.Canceled)
	done <- err // for the cleanup
	assert.True(t, closed(a), "waiters re-read instead of sleeping on a dead feed")
}

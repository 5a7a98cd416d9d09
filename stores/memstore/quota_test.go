package memstore

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/taskbridge/taskbridge-fiber/contracts"
)

// limitOf returns the LimitError in err.
func limitOf(t *testing.T, err error, kind error) *contracts.LimitError {
	t.Helper()
	var le *contracts.LimitError
	require.ErrorAs(t, err, &le)
	require.ErrorIs(t, err, kind)
	return le
}

func bigTask(id, owner string, n int) contracts.TaskRecord {
	rec := task(id, owner, id)
	rec.Attachments = []contracts.Attachment{{Filename: "a.bin", ContentType: "application/octet-stream", Size: int64(n), Content: make([]byte, n)}}
	return rec
}

func TestLimitsPerOwnerAndOverall(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	clock := newFakeClock()
	s := New(Options{Clock: clock.Now, MaxBytesPerOwner: 12_000, MaxBytes: 25_000, MaxTasksPerOwner: 3, MaxTasks: 5, TerminalTTL: time.Minute})

	// Per owner: bytes, then tasks.
	_, _, err := s.Tasks.Create(ctx, bigTask("a1", "alice", 6000))
	require.NoError(t, err)
	_, _, err = s.Tasks.Create(ctx, bigTask("a2", "alice", 6000))
	le := limitOf(t, err, contracts.ErrQuotaExceeded)
	assert.Equal(t, "MaxBytesPerOwner", le.Limit)
	assert.Positive(t, le.RetryAfter)
	_, err = s.Tasks.Get(ctx, "a2")
	require.ErrorIs(t, err, contracts.ErrNotFound, "nothing stored")
	for _, id := range []string{"a2", "a3"} {
		_, _, err = s.Tasks.Create(ctx, task(id, "alice", id))
		require.NoError(t, err)
	}
	_, _, err = s.Tasks.Create(ctx, task("a4", "alice", "a4"))
	assert.Equal(t, "MaxTasksPerOwner", limitOf(t, err, contracts.ErrQuotaExceeded).Limit)

	// Another owner is not held back by alice's quota ...
	_, _, err = s.Tasks.Create(ctx, bigTask("b1", "bob", 6000))
	require.NoError(t, err)
	_, _, err = s.Tasks.Create(ctx, task("b2", "bob", "b2"))
	require.NoError(t, err)
	// ... until the store as a whole is full.
	_, _, err = s.Tasks.Create(ctx, task("c1", "carol", "c1"))
	assert.Equal(t, "MaxTasks", limitOf(t, err, contracts.ErrStoreFull).Limit)

	// Events count towards the owner's bytes; a terminal event is always
	// taken.
	msg := strings.Repeat("x", 3000)
	d, err := contracts.Progress(10, msg, "")
	require.NoError(t, err)
	_, err = s.Events.Append(ctx, "a2", d)
	require.NoError(t, err)
	_, err = s.Events.Append(ctx, "a2", d)
	assert.Equal(t, "MaxBytesPerOwner", limitOf(t, err, contracts.ErrQuotaExceeded).Limit)
	for _, id := range []string{"a1", "a2", "a3"} {
		_, err = s.Events.Append(ctx, id, completed(t))
		require.NoError(t, err, "a task over its quota can still end")
	}
	all, alice := s.Tasks.(*TaskRegistry).Usage("alice")
	assert.EqualValues(t, 5, all.Tasks)
	assert.EqualValues(t, 3, alice.Tasks)
	assert.Greater(t, alice.Bytes, int64(9000))

	// Retention frees the owner's share when it drops the tasks.
	clock.Advance(time.Minute)
	_, _, err = s.Tasks.Create(ctx, bigTask("a5", "alice", 6000))
	require.NoError(t, err)
	all, alice = s.Tasks.(*TaskRegistry).Usage("alice")
	assert.EqualValues(t, 3, all.Tasks)
	assert.EqualValues(t, 1, alice.Tasks)
}

func TestLimitsEventCapReleasesBytes(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := New(Options{MaxEventsPerTask: 10, MaxBytesPerOwner: 50_000})
	_, _, err := s.Tasks.Create(ctx, task("t", "alice", "t"))
	require.NoError(t, err)
	d, err := contracts.Progress(10, strings.Repeat("y", 1000), "")
	require.NoError(t, err)
	// 1,000 events of ~1.3 KB would be 1.3 MB; the cap keeps 10, so they fit.
	for range 1000 {
		_, err := s.Events.Append(ctx, "t", d)
		require.NoError(t, err)
	}
	_, alice := s.Tasks.(*TaskRegistry).Usage("alice")
	assert.Less(t, alice.Bytes, int64(20_000))
}

func TestLimitsOff(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := New(Options{MaxBytes: -1, MaxBytesPerOwner: -1, MaxTasks: -1, MaxTasksPerOwner: -1})
	_, _, err := s.Tasks.Create(ctx, bigTask("x", "alice", DefaultMaxBytes+1))
	require.NoError(t, err)
	var le *contracts.LimitError
	assert.False(t, errors.As(err, &le))
	// Nothing is counted: no quota at all, and events, a terminal event
	// and retention work without it.
	assert.Nil(t, s.Tasks.(*TaskRegistry).cfg.quota)
	_, err = s.Events.Append(ctx, "x", completed(t))
	require.NoError(t, err)
	all, alice := s.Tasks.(*TaskRegistry).Usage("alice")
	assert.Zero(t, all)
	assert.Zero(t, alice)
}

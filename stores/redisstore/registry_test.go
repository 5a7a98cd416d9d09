package redisstore_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/taskbridge/taskbridge-fiber/contracts"
	"github.com/taskbridge/taskbridge-fiber/stores/redisstore"
	"github.com/taskbridge/taskbridge-fiber/stores/storetest"
)

func demoTask(id, owner, request string) contracts.TaskRecord {
	return contracts.TaskRecord{
		TaskID: id, OwnerID: owner, ClientRequestID: request, TaskType: "demo",
		Input: json.RawMessage(`{"n":1}`), Fingerprint: "fp",
	}
}

// TestCreateRaceLeavesOneRecord: of 50 concurrent creates with one key
// and 50 task ids, one wins, all see the winner, and the losers' records
// are gone from Redis.
func TestCreateRaceLeavesOneRecord(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	s, c, p := newStores(t, redisstore.Options{})
	const n = 50
	results := make([]contracts.TaskRecord, n)
	createdBy := make([]bool, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			results[i], createdBy[i], errs[i] = s.Tasks.Create(ctx, demoTask(fmt.Sprint("t", i), "owner", "same"))
		}()
	}
	close(start)
	wg.Wait()
	winners := 0
	for i := range n {
		require.NoError(t, errs[i])
		if createdBy[i] {
			winners++
		}
		assert.Equal(t, results[0].TaskID, results[i].TaskID)
	}
	require.Equal(t, 1, winners)
	var records []string
	for _, k := range keysUnder(t, c, p) {
		if strings.HasSuffix(k, ":task") {
			records = append(records, k)
		}
	}
	assert.Equal(t, []string{p + "{" + results[0].TaskID + "}:task"}, records)
	holder, err := c.Get(ctx, p+"idem:5:owner:same").Result()
	require.NoError(t, err)
	assert.Equal(t, results[0].TaskID, holder)
}

// TestCreateReplacesStaleIdempotencyKey: a key naming a task that no longer
// exists (expired, or a creator that died) does not block a new create.
func TestCreateReplacesStaleIdempotencyKey(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	s, c, p := newStores(t, redisstore.Options{})
	require.NoError(t, c.Set(ctx, p+"idem:1:o:r", "gone", 0).Err())
	got, created, err := s.Tasks.Create(ctx, demoTask("fresh", "o", "r"))
	require.NoError(t, err)
	assert.True(t, created)
	assert.Equal(t, "fresh", got.TaskID)
	holder, err := c.Get(ctx, p+"idem:1:o:r").Result()
	require.NoError(t, err)
	assert.Equal(t, "fresh", holder)

	again, created, err := s.Tasks.Create(ctx, demoTask("other", "o", "r"))
	require.NoError(t, err)
	assert.False(t, created)
	assert.Equal(t, "fresh", again.TaskID)
}

// TestIdempotencyKeysAreOwnerScoped: the length prefix keeps owner and
// request id apart, so ("a:b", "c") and ("a", "b:c") are different keys.
func TestIdempotencyKeysAreOwnerScoped(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	s, _, _ := newStores(t, redisstore.Options{})
	_, created, err := s.Tasks.Create(ctx, demoTask("t1", "a:b", "c"))
	require.NoError(t, err)
	require.True(t, created)
	_, created, err = s.Tasks.Create(ctx, demoTask("t2", "a", "b:c"))
	require.NoError(t, err)
	assert.True(t, created)
}

// TestRecordSurvivesLuaUpdates: status changes run in Lua but never touch
// the record's JSON, so Input and Metadata come back byte for byte (cjson
// would rewrite big numbers and escape slashes), and times keep their
// nanoseconds.
func TestRecordSurvivesLuaUpdates(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	now := time.Date(2026, 1, 2, 3, 4, 5, 123456789, time.UTC)
	s, _, _ := newStores(t, redisstore.Options{Clock: func() time.Time { return now }})
	task := demoTask("t", "o", "r")
	task.Input = json.RawMessage(`{"big":12345678901234567890,"f":1.10,"path":"a/b","u":"é\u2028"}`)
	task.Metadata = json.RawMessage(`{"m":[1,2,3]}`)
	task.Attachments = []contracts.Attachment{contracts.NewAttachment("a.txt", "text/plain", []byte("hi"))}
	created, ok, err := s.Tasks.Create(ctx, task)
	require.NoError(t, err)
	require.True(t, ok)
	assert.True(t, created.CreatedAt.Equal(now))

	now = now.Add(time.Second)
	_, err = s.Tasks.UpdateStatus(ctx, "t", contracts.StatusRunning)
	require.NoError(t, err)
	now = now.Add(time.Second)
	_, err = s.Tasks.RequestCancellation(ctx, "t", "user asked")
	require.NoError(t, err)
	got, err := s.Tasks.Get(ctx, "t")
	require.NoError(t, err)
	assert.Equal(t, string(task.Input), string(got.Input))
	assert.Equal(t, string(task.Metadata), string(got.Metadata))
	assert.Equal(t, task.Attachments, got.Attachments)
	assert.Equal(t, contracts.StatusRunning, got.Status)
	assert.True(t, got.CancelRequested)
	assert.Equal(t, "user asked", got.CancelReason)
	assert.True(t, got.CreatedAt.Equal(created.CreatedAt))
	assert.True(t, got.UpdatedAt.Equal(now), "updated %s", got.UpdatedAt)
}

// TestUpdateStatusRules walks the transition table through the Lua check.
func TestUpdateStatusRules(t *testing.T) {
	t.Parallel()
	all := []contracts.TaskStatus{contracts.StatusAccepted, contracts.StatusRunning,
		contracts.StatusCompleted, contracts.StatusFailed, contracts.StatusCancelled}
	s, _, _ := newStores(t, redisstore.Options{})
	for _, from := range all {
		for _, to := range append(all, "BOGUS") {
			t.Run(string(from)+"->"+string(to), func(t *testing.T) {
				ctx := testContext(t)
				id := string(from) + "-" + string(to)
				task := demoTask(id, "o", "")
				task.Status = from
				_, _, err := s.Tasks.Create(ctx, task)
				require.NoError(t, err)
				got, err := s.Tasks.UpdateStatus(ctx, id, to)
				switch {
				case from == to:
					require.NoError(t, err)
					assert.Equal(t, from, got.Status)
				case from.IsTerminal():
					require.ErrorIs(t, err, contracts.ErrTerminal)
				case from.CanTransitionTo(to):
					require.NoError(t, err)
					assert.Equal(t, to, got.Status)
				default:
					require.ErrorIs(t, err, contracts.ErrInvalidTransition)
				}
			})
		}
	}
}

// TestRegistryOnSplitPipelines runs the registry over a ring client (one
// shard, this test's server): a client whose pipelines may reach several
// nodes in any order, so Create writes the record before it claims the
// idempotency key (two round trips) instead of sending both at once. The
// conformance suite and a race for one key must hold there too.
func TestRegistryOnSplitPipelines(t *testing.T) {
	addr := redisAddr(t)
	plain := newClient(t)
	newRing := func(t *testing.T) (contracts.TaskRegistry, string) {
		ring := redis.NewRing(&redis.RingOptions{
			Addrs: map[string]string{"only": addr}, ContextTimeoutEnabled: true,
			DialTimeout: time.Second, ReadTimeout: time.Second, WriteTimeout: time.Second,
		})
		t.Cleanup(func() { _ = ring.Close() })
		prefix := uniquePrefix(t, plain)
		s := check(redisstore.New(ring, redisstore.Options{KeyPrefix: prefix}))(t)
		return s.Tasks, prefix
	}
	storetest.RunTaskRegistry(t, func(t *testing.T) contracts.TaskRegistry {
		reg, _ := newRing(t)
		return reg
	})
	t.Run("race for one key", func(t *testing.T) {
		ctx := testContext(t)
		reg, prefix := newRing(t)
		const n = 20
		ids := make([]string, n)
		created := make([]bool, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				got, c, err := reg.Create(ctx, demoTask(fmt.Sprint("t", i), "owner", "same"))
				assert.NoError(t, err)
				ids[i], created[i] = got.TaskID, c
			}()
		}
		wg.Wait()
		winners := 0
		for i := range n {
			if created[i] {
				winners++
			}
			assert.Equal(t, ids[0], ids[i])
		}
		assert.Equal(t, 1, winners)
		var records []string
		for _, k := range keysUnder(t, plain, prefix) {
			if strings.HasSuffix(k, ":task") {
				records = append(records, k)
			}
		}
		assert.Equal(t, []string{prefix + "{" + ids[0] + "}:task"}, records, "the losers removed their records")
	})
}

package redisstore_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/taskbridge/taskbridge-fiber/contracts"
	"github.com/taskbridge/taskbridge-fiber/stores/redisstore"
)

// exampleClient connects to the server make test starts and returns a
// unique key prefix and a function that deletes its keys and closes the
// client. (Without TASKBRIDGE_REDIS_ADDR, TestMain leaves the examples
// out.)
func exampleClient() (*redis.Client, string, func()) {
	client := redis.NewClient(&redis.Options{
		Addr:                  os.Getenv("TASKBRIDGE_REDIS_ADDR"),
		ContextTimeoutEnabled: true, // calls end with their context
	})
	var b [6]byte
	_, _ = rand.Read(b[:])
	prefix := "example:" + hex.EncodeToString(b[:]) + ":"
	return client, prefix, func() {
		ctx := context.Background()
		keys, _ := client.Keys(ctx, prefix+"*").Result()
		if len(keys) > 0 {
			client.Del(ctx, keys...)
		}
		_ = client.Close()
	}
}

// A task created, deduplicated, streamed and read back through Redis.
func ExampleNew() {
	client, prefix, done := exampleClient()
	defer done()
	stores, err := redisstore.New(client, redisstore.Options{KeyPrefix: prefix})
	if err != nil {
		panic(err)
	}
	ctx := context.Background()

	req := contracts.TaskRecord{
		TaskID: contracts.NewID(), OwnerID: "alice", ClientRequestID: "req-1",
		TaskType: "report", Input: json.RawMessage(`{"month":"2026-01"}`),
	}
	task, created, err := stores.Tasks.Create(ctx, req)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("created:", created, task.Status)

	req.TaskID = contracts.NewID() // a retry of the same request
	again, created, _ := stores.Tasks.Create(ctx, req)
	fmt.Println("created again:", created, again.TaskID == task.TaskID)

	_, _ = stores.Events.Append(ctx, task.TaskID, contracts.Started("working"))
	result, _ := contracts.Completed(map[string]int{"pages": 3})
	_, _ = stores.Events.Append(ctx, task.TaskID, result)
	page, _ := stores.Events.Read(ctx, task.TaskID, contracts.EventID{}, 10)
	for _, ev := range page.Events {
		fmt.Println(ev.Type, string(ev.Payload))
	}
	fmt.Println("ended:", page.Ended)
	// Output:
	// created: true ACCEPTED
	// created again: false true
	// TASK_STARTED {"message":"working"}
	// TASK_COMPLETED {"result":{"pages":3}}
	// ended: true
}

// The change feed: one subscription per Listen call. The first listener of
// a store is told to resync once the subscription is up, because changes
// made before that were not seen.
func ExampleEventStore_Listen() {
	client, prefix, done := exampleClient()
	defer done()
	stores, err := redisstore.New(client, redisstore.Options{KeyPrefix: prefix})
	if err != nil {
		panic(err)
	}
	events := stores.Events
	ctx, cancel := context.WithCancel(context.Background())
	changes := make(chan contracts.Change, 16)
	stopped := make(chan error, 1)
	go func() {
		stopped <- events.Listen(ctx, func(c contracts.Change) {
			select { // listeners must return quickly
			case changes <- c:
			default:
			}
		})
	}()

	first := <-changes
	fmt.Println("resync:", first.Resync)
	ev, _ := events.Append(ctx, "task-1", contracts.Started(""))
	c := <-changes
	fmt.Println(c.TaskID, c.LastEventID == ev.EventID)

	cancel()
	fmt.Println(<-stopped)
	// Output:
	// resync: true
	// task-1 true
	// context canceled
}

// A readiness probe for the composite /ready check.
func ExampleNewProbe() {
	client, _, done := exampleClient()
	defer done()
	probe := redisstore.NewProbe(client, 500*time.Millisecond)
	fmt.Println(probe.Check(context.Background()))
	fmt.Println(probe.CheckReadiness(context.Background()))
	// Output:
	// <nil>
	// true map[redis:ok]
}

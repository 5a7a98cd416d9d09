package redisstore_test

import (
	"context"
	"testing"

	"github.com/taskbridge/taskbridge-fiber/contracts"
)

// The cost of a cancel through the relay on one instance while another
// listens: the local executor's (no-op) cancel and one PUBLISH round trip.
// The listening relay reads the registry only for tasks its executor
// holds, so these notices cost it no Redis call.

func BenchmarkCancelRelayCancel(b *testing.B) {
	prefix := uniquePrefix(b, newClient(b))
	a := startRelayInstance(b, relayInstanceConfig{prefix: prefix})
	startRelayInstance(b, relayInstanceConfig{prefix: prefix})
	awaitSubscribers(b, newClient(b), a.relay.Channel(), 2)
	ctx := context.Background()
	task := contracts.TaskRecord{TaskID: contracts.NewID(), CancelRequested: true}
	b.ReportAllocs()
	for b.Loop() {
		if err := a.relay.Cancel(ctx, task); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkCancelRelayCancelParallel(b *testing.B) {
	prefix := uniquePrefix(b, newClient(b))
	a := startRelayInstance(b, relayInstanceConfig{prefix: prefix})
	startRelayInstance(b, relayInstanceConfig{prefix: prefix})
	awaitSubscribers(b, newClient(b), a.relay.Channel(), 2)
	ctx := context.Background()
	task := contracts.TaskRecord{TaskID: contracts.NewID(), CancelRequested: true}
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := a.relay.Cancel(ctx, task); err != nil {
				b.Fatal(err)
			}
		}
	})
}

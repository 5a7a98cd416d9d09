package memstore

import (
	"context"

	"github.com/taskbridge/taskbridge-fiber/contracts"
)

var _ contracts.SummaryReader = (*EventStore)(nil)

// Summaries implements contracts.SummaryReader. Each task's summary is
// folded on append under the task's lock (contracts.TaskLogSummary.Apply),
// so it is exact whatever MaxEventsPerTask dropped; reading it costs one
// lookup per task. An unknown or expired task has the zero summary. The
// payloads are shared with the store: do not modify them.
func (s *EventStore) Summaries(_ context.Context, taskIDs []string) ([]contracts.TaskLogSummary, error) {
	out := make([]contracts.TaskLogSummary, len(taskIDs))
	var nowNs int64
	for i, id := range taskIDs {
		sh := s.shard(id)
		sh.mu.RLock()
		st := sh.streams[id]
		sh.mu.RUnlock()
		if st == nil {
			continue
		}
		st.mu.RLock()
		if st.expireAt != 0 {
			if nowNs == 0 {
				nowNs = s.cfg.now().UnixNano()
			}
			if nowNs >= st.expireAt {
				st.mu.RUnlock()
				s.remove(id, nowNs)
				continue
			}
		}
		out[i] = st.summary
		st.mu.RUnlock()
	}
	return out, nil
}

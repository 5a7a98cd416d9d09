package contracts_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/taskbridge/taskbridge-fiber/contracts"
)

func TestHeartbeatMarshalsTheWebSocketForm(t *testing.T) {
	t.Parallel()
	b, err := json.Marshal(contracts.Heartbeat{Type: contracts.FrameHeartbeat, TaskID: "t", Live: true, EventID: "hb-1", CreatedAt: time.Now()})
	require.NoError(t, err)
	assert.JSONEq(t, `{"type":"HEARTBEAT","taskId":"t","live":true}`, string(b))
}

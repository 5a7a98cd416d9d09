package contracts_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/taskbridge/taskbridge-fiber/contracts"
)

func TestParseUnsubscribeRequest(t *testing.T) {
	t.Parallel()
	long := make([]byte, contracts.MaxTaskIDLen+1)
	for i := range long {
		long[i] = 'a'
	}
	tests := []struct {
		name string
		in   string
		ok   bool
	}{
		{"valid", `{"action":"unsubscribe","taskId":"t1"}`, true},
		{"subscribe action", `{"action":"subscribe","taskId":"t1"}`, false},
		{"missing taskId", `{"action":"unsubscribe"}`, false},
		{"empty taskId", `{"action":"unsubscribe","taskId":""}`, false},
		{"lastEventId is no field of it", `{"action":"unsubscribe","taskId":"t1","lastEventId":null}`, false},
		{"unknown field", `{"action":"unsubscribe","taskId":"t1","x":1}`, false},
		{"trailing data", `{"action":"unsubscribe","taskId":"t1"} {}`, false},
		{"over-long taskId", `{"action":"unsubscribe","taskId":"` + string(long) + `"}`, false},
		{"not an object", `"unsubscribe"`, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r, err := contracts.ParseUnsubscribeRequest([]byte(tc.in))
			if !tc.ok {
				require.ErrorIs(t, err, contracts.ErrInvalidFrame)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, "t1", r.TaskID)
		})
	}
}

func TestDecodeMultiTaskFrames(t *testing.T) {
	t.Parallel()
	f, err := contracts.DecodeServerFrame([]byte(`{"type":"SUBSCRIPTION_ERROR","taskId":"t1","code":"TASK_NOT_FOUND","message":"task not found"}`))
	require.NoError(t, err)
	require.NotNil(t, f.SubscriptionError)
	assert.Equal(t, contracts.SubscriptionError{Type: contracts.FrameSubscriptionError, TaskID: "t1", Code: "TASK_NOT_FOUND", Message: "task not found"}, *f.SubscriptionError)

	f, err = contracts.DecodeServerFrame([]byte(`{"type":"UNSUBSCRIBED","taskId":"t1","reason":"unsubscribed"}`))
	require.NoError(t, err)
	require.NotNil(t, f.Unsubscribed)
	assert.Equal(t, "unsubscribed", f.Unsubscribed.Reason)

	for _, bad := range []string{
		`{"type":"SUBSCRIPTION_ERROR","taskId":"t1","message":"m"}`,
		`{"type":"SUBSCRIPTION_ERROR","taskId":"t1","code":"X","message":"m","extra":1}`,
		`{"type":"UNSUBSCRIBED","taskId":"t1"}`,
		`{"type":"UNSUBSCRIBED","reason":"ended"}`,
	} {
		_, err := contracts.DecodeServerFrame([]byte(bad))
		assert.ErrorIs(t, err, contracts.ErrInvalidFrame, bad)
	}
}

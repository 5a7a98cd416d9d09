package contracts_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/taskbridge/taskbridge-fiber/contracts"
)

// TestUnsubscribeRequestValidate: the rules of an unsubscribe frame.
func TestUnsubscribeRequestValidate(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("a", contracts.MaxTaskIDLen+1)
	tests := []struct {
		name string
		in   string
		ok   bool
	}{
		{"valid", `{"action":"unsubscribe","taskId":"t1"}`, true},
		{"subscribe action", `{"action":"subscribe","taskId":"t1"}`, false},
		{"missing taskId", `{"action":"unsubscribe"}`, false},
		{"empty taskId", `{"action":"unsubscribe","taskId":""}`, false},
		{"over-long taskId", `{"action":"unsubscribe","taskId":"` + long + `"}`, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var r contracts.UnsubscribeRequest
			require.NoError(t, json.Unmarshal([]byte(tc.in), &r))
			err := r.Validate()
			if !tc.ok {
				require.ErrorIs(t, err, contracts.ErrInvalidFrame)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, "t1", r.TaskID)
		})
	}
}

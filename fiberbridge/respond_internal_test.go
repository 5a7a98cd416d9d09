package fiberbridge

import (
	"encoding/json"
	"mime"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/taskbridge/taskbridge-fiber/contracts"
)

// TestResponseEncodersMatchEncodingJSON: the hand-written answers of
// create, cancel and action are byte for byte what json.Marshal writes,
// escaping included.
func TestResponseEncodersMatchEncodingJSON(t *testing.T) {
	for _, s := range []string{
		"", "0123456789abcdef0123456789abcdef", "ACCEPTED", `a"b\c`, "<b>&amp;</b>", "tab\tnl\ncr\r",
		"\x00\x1f\x7f", "é日本語😀", "\u2028\u2029", "\xff\xfe", "a/b",
	} {
		created := contracts.TaskCreated{TaskID: s, Status: contracts.TaskStatus(s), ClientRequestID: s, Deduplicated: len(s)%2 == 0}
		want, err := json.Marshal(created)
		require.NoError(t, err)
		assert.Equal(t, string(want), string(appendTaskCreated(nil, &created)))

		cancel := contracts.CancelResult{TaskID: s, Status: contracts.CancelStatus(s)}
		want, err = json.Marshal(cancel)
		require.NoError(t, err)
		assert.Equal(t, string(want), string(appendCancelResult(nil, &cancel)))

		action := contracts.ActionResult{TaskID: s, SuspendID: s + "s", ClientActionID: "c" + s, Status: contracts.ActionStatus(s)}
		want, err = json.Marshal(action)
		require.NoError(t, err)
		assert.Equal(t, string(want), string(appendActionResult(nil, &action)))
	}
}

// TestMediaTypeFastPath: the headers mediaType answers without
// mime.ParseMediaType get the answer it would give.
func TestMediaTypeFastPath(t *testing.T) {
	for _, h := range []string{
		"application/json", "Application/JSON", "application/json; charset=utf-8", "APPLICATION/JSON; CHARSET=UTF-8",
		"application/json;charset=utf-8", "application/json;charset=UTF-8",
	} {
		require.True(t, isPlainJSON(h), h)
		mt, _, err := mime.ParseMediaType(h)
		require.NoError(t, err)
		assert.Equal(t, mt, mediaType(h), h)
	}
	for _, h := range []string{"application/json; charset=latin1", "application/jsonx", " application/json", "application/json;"} {
		assert.False(t, isPlainJSON(h), h)
	}
}

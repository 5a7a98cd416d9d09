package fiberbridge

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/taskbridge/taskbridge-fiber/contracts"
	bridgeerr "github.com/taskbridge/taskbridge-fiber/errors"
)

func codeOf(t testing.TB, err error) (bridgeerr.Code, int) {
	t.Helper()
	var be *bridgeerr.Error
	require.True(t, errors.As(err, &be), "want *bridgeerr.Error, got %T %v", err, err)
	return be.Code, be.HTTPStatus()
}

func TestParseTaskID(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in string
		ok bool
	}{
		{"abc", true},
		{"..", true}, // a valid string that names no task: 404 later
		{"%00", true},
		{strings.Repeat("a", contracts.MaxTaskIDLen), true},
		{"", false},
		{strings.Repeat("a", contracts.MaxTaskIDLen+1), false},
		{"a\x00b", false},
		{"a\nb", false},
		{"\xff", false},
	} {
		got, err := parseTaskID(tc.in)
		if tc.ok {
			require.NoError(t, err, "%q", tc.in)
			assert.Equal(t, tc.in, got)
			continue
		}
		code, status := codeOf(t, err)
		assert.Equal(t, bridgeerr.CodeInvalidRequest, code, "%q", tc.in)
		assert.Equal(t, 400, status)
	}
}

func TestParseIntParam(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		raw  string
		want int
		ok   bool
	}{
		{"", 100, true}, {"1", 1, true}, {"500", 500, true}, {"+7", 7, true},
		{"0", 0, false}, {"501", 0, false}, {"-1", 0, false}, {"x", 0, false}, {"1.0", 0, false},
		{"1e2", 0, false}, {" 5", 0, false}, {strings.Repeat("9", 30), 0, false},
	} {
		got, err := parseIntParam("maxEvents", tc.raw, 100, 1, 500)
		if tc.ok {
			require.NoError(t, err, tc.raw)
			assert.Equal(t, tc.want, got)
			continue
		}
		code, status := codeOf(t, err)
		assert.Equal(t, bridgeerr.CodeRequestValidation, code, tc.raw)
		assert.Equal(t, 422, status)
		var be *bridgeerr.Error
		require.ErrorAs(t, err, &be)
		assert.Equal(t, "maxEvents", be.Details["parameter"])
	}
}

func TestParseCursor(t *testing.T) {
	t.Parallel()
	id, err := parseCursor("afterEventId", "")
	require.NoError(t, err)
	assert.True(t, id.IsZero())
	id, err = parseCursor("afterEventId", "10-2")
	require.NoError(t, err)
	assert.Equal(t, contracts.EventID{Ms: 10, Seq: 2}, id)
	for _, raw := range []string{"x", "-1", "1-", "1-2-3", " 1", strings.Repeat("1", 10<<10)} {
		_, err := parseCursor("Last-Event-ID", raw)
		code, status := codeOf(t, err)
		assert.Equal(t, bridgeerr.CodeInvalidRequest, code)
		assert.Equal(t, 400, status)
		assert.LessOrEqual(t, len(err.Error()), 300, "the cursor is not echoed in full")
	}
}

func TestCleanFilename(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ in, want string }{
		{"report.pdf", "report.pdf"},
		{"../../etc/passwd", "passwd"},
		{`C:\Users\me\photo.png`, "photo.png"},
		{`a/b\c`, "c"},
		{"ünïcode.txt", "ünïcode.txt"},
		{"", ""}, {"/", ""}, {"dir/", ""}, {".", ""}, {"..", ""}, {"a\x00b", ""}, {"a\rb", ""}, {"\xff", ""},
		{strings.Repeat("n", 256), ""},
	} {
		got, err := cleanFilename(tc.in)
		if tc.want == "" {
			code, _ := codeOf(t, err)
			assert.Equal(t, bridgeerr.CodeUploadValidation, code, "%q", tc.in)
			continue
		}
		require.NoError(t, err, "%q", tc.in)
		assert.Equal(t, tc.want, got)
	}
}

func TestMediaRange(t *testing.T) {
	t.Parallel()
	png, err := parseMediaRange("Image/PNG")
	require.NoError(t, err)
	images, err := parseMediaRange("image/*")
	require.NoError(t, err)
	assert.True(t, png.matches("image/png"))
	assert.False(t, png.matches("image/gif"))
	assert.True(t, images.matches("image/gif"))
	assert.False(t, images.matches("text/plain"))
	for _, bad := range []string{"", "png", "*/*", "image/", "a b/c"} {
		_, err := parseMediaRange(bad)
		assert.Error(t, err, bad)
	}
	assert.Equal(t, "application/json", mediaType("Application/JSON; charset=utf-8"))
	assert.Equal(t, "", mediaType("  "))
	assert.Equal(t, "invalid", mediaType("no slash;;"))
	assert.True(t, isJSONType("application/problem+json"))
	assert.False(t, isJSONType("text/json+plain"))
}

func TestParseCreateJSON(t *testing.T) {
	t.Parallel()
	cmd, err := parseCreateJSON([]byte(` {"clientRequestId":"r","taskType":"t","input":{"b":1,"a":[2]},"metadata":null} `))
	require.NoError(t, err)
	assert.Equal(t, "r", cmd.ClientRequestID)
	assert.Equal(t, "t", cmd.TaskType)
	assert.Equal(t, `{"a":[2],"b":1}`, string(cmd.Input), "input is canonical")
	assert.Equal(t, `{}`, string(cmd.Metadata))

	for _, tc := range []struct{ body, field string }{
		{`{"clientRequestId":1}`, "clientRequestId"},
		{`{"taskType":true}`, "taskType"},
		{`{"input":[]}`, "input"},
		{`{"metadata":"x"}`, "metadata"},
		{`{"unknown":1}`, "unknown"},
		{`{"clientRequestId":"a\u0000b"}`, "clientRequestId"},
	} {
		_, err := parseCreateJSON([]byte(tc.body))
		code, status := codeOf(t, err)
		assert.Equal(t, bridgeerr.CodeInvalidRequest, code, tc.body)
		assert.Equal(t, 400, status)
		var be *bridgeerr.Error
		require.ErrorAs(t, err, &be)
		assert.Equal(t, tc.field, be.Details["field"], tc.body)
	}
}

func TestParseAction(t *testing.T) {
	t.Parallel()
	cmd, err := parseAction([]byte(`{"clientActionId":"c","suspendId":"s","actionType":"approve","payload":{"z":1,"a":2},"metadata":{}}`))
	require.NoError(t, err)
	assert.Equal(t, `{"a":2,"z":1}`, string(cmd.Payload))
	_, err = parseAction([]byte(`{"clientActionId":"c","suspendId":"s","actionType":"approve","extra":1}`))
	code, _ := codeOf(t, err)
	assert.Equal(t, bridgeerr.CodeInvalidRequest, code)
	_, err = parseAction(nil)
	code, _ = codeOf(t, err)
	assert.Equal(t, bridgeerr.CodeInvalidRequest, code)
}

func TestParseCancel(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		body, want string
		ok         bool
	}{
		{"", "", true}, {"  ", "", true}, {"{}", "", true}, {`{"reason":null}`, "", true}, {`{"reason":"r"}`, "r", true},
		{`{"reason":1}`, "", false}, {`[]`, "", false}, {`{"reason":"` + strings.Repeat("x", 1025) + `"}`, "", false},
	} {
		got, err := parseCancel([]byte(tc.body))
		if tc.ok {
			require.NoError(t, err, tc.body)
			assert.Equal(t, tc.want, got)
		} else {
			assert.Error(t, err, tc.body)
		}
	}
}

// TestAppendPollResultMatchesEncodingJSON: the hand encoder and
// encoding/json agree on every shape of a result.
func TestAppendPollResultMatchesEncodingJSON(t *testing.T) {
	t.Parallel()
	d1 := contracts.Started("go \"quoted\"\n")
	d2, err := contracts.Progress(42.5, "stage", "<&>")
	require.NoError(t, err)
	at := time.Date(2026, 1, 2, 3, 4, 5, 6_000_000, time.UTC)
	evs := []contracts.TaskEvent{
		{Type: d1.Type(), TaskID: "t\u2028", EventID: contracts.EventID{Ms: 1, Seq: 0}, CreatedAt: at, Payload: d1.Payload()},
		{Type: d2.Type(), TaskID: "t\u2028", EventID: contracts.EventID{Ms: 1, Seq: 1}, CreatedAt: at, Payload: d2.Payload()},
	}
	next := contracts.EventID{Ms: 1, Seq: 1}
	for _, res := range []contracts.PollResult{
		{TaskID: "a", Events: []contracts.TaskEvent{}},
		{TaskID: "t\u2028", Events: evs, NextAfterEventID: &next, HasMore: true},
		{TaskID: "b", Events: evs[:1], NextAfterEventID: &next, RetentionGap: true},
	} {
		want, err := json.Marshal(res)
		require.NoError(t, err)
		got := appendPollResult(nil, &res)
		assert.JSONEq(t, string(want), string(got))
		var back contracts.PollResult
		require.NoError(t, json.Unmarshal(got, &back))
	}
}

// FuzzParseCreateJSON: any body yields a command or a 4xx
// *bridgeerr.Error, never a panic; an accepted command's fields are
// printable and bounded and its input and metadata are JSON objects.
func FuzzParseCreateJSON(f *testing.F) {
	for _, seed := range []string{
		`{"clientRequestId":"r","taskType":"t","input":{"a":1}}`,
		`{"clientRequestId":"r","taskType":"t","metadata":{"k":[1,2,{"x":null}]}}`,
		`[]`, `"s"`, `{`, ``, `{"clientRequestId":5}`, `{"x":1}`, "{\"taskType\":\"\xff\"}",
		`{"clientRequestId":"a","taskType":"b"} trailing`, `{"input":"{}"}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		cmd, err := parseCreateJSON(body)
		if err != nil {
			var be *bridgeerr.Error
			require.ErrorAs(t, err, &be)
			require.GreaterOrEqual(t, be.HTTPStatus(), 400)
			require.Less(t, be.HTTPStatus(), 500)
			return
		}
		require.True(t, printable(cmd.ClientRequestID) && len(cmd.ClientRequestID) <= MaxFieldBytes)
		require.True(t, printable(cmd.TaskType) && len(cmd.TaskType) <= MaxFieldBytes)
		for _, obj := range []json.RawMessage{cmd.Input, cmd.Metadata} {
			var m map[string]any
			require.NoError(t, json.Unmarshal(obj, &m))
			require.NotNil(t, m)
		}
	})
}

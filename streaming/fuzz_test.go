package streaming

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/taskbridge/taskbridge-fiber/contracts"
)

// FuzzAppendSSEEvent: whatever a task puts in its messages or ids, an SSE
// frame is exactly one id line, one data line and the blank line, and the
// data line decodes back to the event.
func FuzzAppendSSEEvent(f *testing.F) {
	f.Add("task-1", "hello", uint64(1), uint64(0))
	f.Add("t\n2", "line1\nid: 9-9\ndata: x\n\n", uint64(1732000000000), uint64(7))
	f.Add("t\r3", "\r\n\u2028\u2029\x00\xff", uint64(0), uint64(1))
	f.Fuzz(func(t *testing.T, taskID, text string, ms, seq uint64) {
		if taskID == "" {
			return
		}
		d, err := contracts.Message(text, contracts.LevelInfo)
		if err != nil {
			return
		}
		ev := contracts.TaskEvent{Type: d.Type(), TaskID: taskID, EventID: contracts.EventID{Ms: ms, Seq: seq}, CreatedAt: time.Unix(1700000000, 0), Payload: d.Payload()}
		frame := appendSSEEvent(nil, &ev)
		if !bytes.HasSuffix(frame, []byte("\n\n")) || bytes.Count(frame, []byte("\n")) != 3 || bytes.ContainsRune(frame, '\r') {
			t.Fatalf("frame is not id/data/blank: %q", frame)
		}
		lines := bytes.Split(frame[:len(frame)-2], []byte("\n"))
		if string(lines[0]) != "id: "+ev.EventID.String() || !bytes.HasPrefix(lines[1], []byte("data: ")) {
			t.Fatalf("unexpected lines: %q", frame)
		}
		var got contracts.TaskEvent
		if err := json.Unmarshal(lines[1][len("data: "):], &got); err != nil {
			t.Fatalf("data line does not decode: %v: %q", err, lines[1])
		}
		if got.EventID != ev.EventID || got.Type != ev.Type {
			t.Fatalf("decoded %+v from %q", got, frame)
		}
	})
}

// FuzzParseSubscribeRequest: any bytes a WebSocket client sends as a
// subscribe frame either decode to a request the runtime can act on (action
// "subscribe", a non-empty taskId of at most MaxTaskIDLen bytes, a cursor
// that parses) that survives a JSON round trip unchanged, or fail with an
// error wrapping ErrInvalidFrame. It never panics.
func FuzzParseSubscribeRequest(f *testing.F) {
	for _, s := range []string{
		`{"action":"subscribe","taskId":"t1"}`,
		`{"action":"subscribe","taskId":"t1","lastEventId":"1700000000000-3"}`,
		`{"action":"subscribe","taskId":"t1","lastEventId":null}`,
		`{"action":"subscribe","taskId":"t1","lastEventId":""}`,
		`{"action":"subscribe","taskId":"t1","lastEventId":"x"}`,
		`{"action":"subscribe","taskId":"t1","lastEventId":5}`,
		`{"action":"subscribe","taskId":""}`,
		`{"action":"subscribe"}`,
		`{"action":"unsubscribe","taskId":"t1"}`,
		`{"action":"subscribe","taskId":"t1","extra":1}`,
		`{"action":"subscribe","taskId":"t1"} {}`,
		`{"action":"subscribe","taskId":"t1","taskId":"t2"}`,
		`{"ACTION":"subscribe","TASKID":"t1"}`,
		`{"action":"subscribe","taskId":"a\u0000b"}`,
		`{"action":"subscribe","taskId":"` + strings.Repeat("a", contracts.MaxTaskIDLen+1) + `"}`,
		`[]`, `"subscribe"`, `null`, `{}`, ``, `{`, "\xff\xfe", `{"action":"subscribe","taskId":["t"]}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		req, err := parseSubscribe(data)
		if err != nil {
			if !errors.Is(err, contracts.ErrInvalidFrame) {
				t.Fatalf("error for %q does not wrap ErrInvalidFrame: %v", data, err)
			}
			return
		}
		if req.Action != "subscribe" || req.TaskID == "" || len(req.TaskID) > contracts.MaxTaskIDLen {
			t.Fatalf("accepted %q as %+v", data, req)
		}
		cursor, err := req.Cursor()
		if err != nil {
			t.Fatalf("accepted %q with a cursor that does not parse: %v", data, err)
		}
		raw, err := json.Marshal(req)
		if err != nil {
			t.Fatalf("re-encode %+v: %v", req, err)
		}
		again, err := parseSubscribe(raw)
		if err != nil {
			t.Fatalf("round trip of %q via %s: %v", data, raw, err)
		}
		if again.TaskID != req.TaskID || again.Action != req.Action || (again.LastEventID == nil) != (req.LastEventID == nil) ||
			(req.LastEventID != nil && *again.LastEventID != *req.LastEventID) {
			t.Fatalf("round trip of %q: %+v then %+v", data, req, again)
		}
		if c, _ := again.Cursor(); c != cursor {
			t.Fatalf("round trip changed the cursor: %v then %v", cursor, c)
		}
	})
}

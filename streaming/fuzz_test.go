package streaming

import (
	"bytes"
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
		got, err := contracts.DecodeEvent(lines[1][len("data: "):])
		if err != nil {
			t.Fatalf("data line does not decode: %v: %q", err, lines[1])
		}
		if got.EventID != ev.EventID || got.Type != ev.Type {
			t.Fatalf("decoded %+v from %q", got, frame)
		}
	})
}

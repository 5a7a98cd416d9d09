package streaming

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/taskbridge/taskbridge-fiber/contracts"
	"github.com/taskbridge/taskbridge-fiber/internal/frames"
)

// sseMessage is one message a WHATWG-conforming EventSource dispatches.
type sseMessage struct {
	id    string
	hasID bool
	data  string
}

// parseEventStream parses an event stream the way the HTML standard's
// EventSource does: lines end at CRLF, LF or a lone CR; "id" sets the last
// event id (unless it contains NUL), "data" lines are joined with LF, a
// blank line dispatches, comments and unknown fields are ignored. It is
// the reference the encoders are checked against: whatever a client sees
// must be exactly the frames the hub meant to write.
func parseEventStream(stream []byte) []sseMessage {
	var (
		out  []sseMessage
		cur  sseMessage
		data []string
		have bool
	)
	s := string(stream)
	for len(s) > 0 {
		i := strings.IndexAny(s, "\r\n")
		if i < 0 {
			break // an unterminated line is never processed
		}
		line := s[:i]
		if s[i] == '\r' && i+1 < len(s) && s[i+1] == '\n' {
			s = s[i+2:]
		} else {
			s = s[i+1:]
		}
		if line == "" {
			if have {
				cur.data = strings.Join(data, "\n")
				out = append(out, cur)
			}
			cur, data, have = sseMessage{}, nil, false
			continue
		}
		if line[0] == ':' {
			continue
		}
		field, value, _ := strings.Cut(line, ":")
		value = strings.TrimPrefix(value, " ")
		switch field {
		case "id":
			if !strings.ContainsRune(value, 0) {
				cur.id, cur.hasID = value, true
			}
		case "data":
			data = append(data, value)
			have = true
		}
	}
	return out
}

// fuzzDraft builds a valid draft of the kind chosen by kind from fuzzed
// strings; ok is false when the constructors refuse the input.
func fuzzDraft(kind uint8, a, b string, result []byte) (contracts.EventDraft, bool) {
	var (
		d   contracts.EventDraft
		err error
	)
	switch kind % 7 {
	case 0:
		d = contracts.Started(a)
	case 1:
		d, err = contracts.Progress(float64(len(b)%101), a, b)
	case 2:
		d, err = contracts.Message(a, contracts.LevelWarning)
	case 3:
		d, err = contracts.Failed(a, b, len(a)%2 == 0)
	case 4:
		d, err = contracts.Cancelled(a, b)
	case 5:
		d, err = contracts.Completed(json.RawMessage(result))
	default:
		d, err = contracts.Completed(map[string]any{a: b, "list": []string{a, b}})
	}
	return d, err == nil && !d.IsZero()
}

// FuzzSSEEventStream: a stream of SSE frames built from events whose task
// ids, messages, codes, reasons and results are arbitrary (line breaks,
// CR, NUL, U+2028, invalid UTF-8, "\n\nid: 9-9\ndata: forged") is parsed
// by a conforming EventSource as exactly those events: one message per
// event, its id the eventId, its data the event JSON, which decodes back
// to the same event. A JSON heartbeat ping for the same task adds one
// message without an id. Nothing a task or client controls can inject a
// line, an id or an event.
func FuzzSSEEventStream(f *testing.F) {
	f.Add("task-1", uint8(2), "hello", "world", []byte(`{"ok":true}`), uint64(1700000000000), uint64(0))
	f.Add("t\n\nid: 9-9\ndata: x", uint8(1), "line1\nid: 9-9\ndata: forged\n\n", "\r\n\r", []byte(`{"a":"\n"}`), uint64(1), uint64(2))
	f.Add("t\r3", uint8(3), "\r\n\u2028\u2029\x00\xff", ":comment\r", []byte("{\"a\":\"\u2028\"}"), uint64(0), uint64(1))
	f.Add("\x00id", uint8(5), "", "", []byte("{ \"x\" :\n[1,\r\n2] }"), uint64(18446744073709551615), uint64(18446744073709551615))
	f.Add("t", uint8(6), "\n", "data: x", []byte(`null`), uint64(5), uint64(5))
	f.Add("t", uint8(4), "user", "id: 1\r\rdata: y", []byte(`"s"`), uint64(9), uint64(0))
	f.Add("t", uint8(0), "\xed\xa0\x80", "\xc0\x8a", []byte("{\"k\":\"\\u000a\"}"), uint64(2), uint64(3))
	f.Fuzz(func(t *testing.T, taskID string, kind uint8, a, b string, result []byte, ms, seq uint64) {
		if taskID == "" {
			return
		}
		d, ok := fuzzDraft(kind, a, b, result)
		if !ok {
			return
		}
		created := time.Unix(1700000000, 0)
		events := []contracts.TaskEvent{
			{Type: d.Type(), TaskID: taskID, EventID: contracts.EventID{Ms: ms, Seq: seq}, CreatedAt: created, Payload: d.Payload()},
			{Type: contracts.EventMessage, TaskID: taskID, EventID: contracts.EventID{Ms: ms, Seq: seq}.Next(), CreatedAt: created,
				Payload: json.RawMessage(`{"message":"after","level":"info"}`)},
		}
		var stream []byte
		for i := range events {
			stream = appendSSEEvent(stream, &events[i])
		}
		// What the hub writes as an SSE heartbeat (the default JSON one),
		// and a batch encoded through the fan-out path.
		stream = append(stream, ": ping\ndata: {\"type\":\"HEARTBEAT\",\"taskId\":"...)
		stream = contracts.AppendJSONString(stream, taskID)
		stream = append(stream, `,"eventId":"hb-`...)
		stream = appendSSEHeartbeatTail(stream, created)
		bt := newBatch(append([]contracts.TaskEvent(nil), events...))
		bt.encode(&allFormats, [numFormats]bool{formatSSE: true})
		for _, fr := range bt.frames {
			stream = append(stream, fr.enc[formatSSE]...)
		}
		if bytes.IndexByte(stream, '\r') >= 0 {
			t.Fatalf("CR in the stream: %q", stream)
		}

		msgs := parseEventStream(stream)
		if len(msgs) != 2*len(events)+1 {
			t.Fatalf("%d messages for %d events and a heartbeat: %q", len(msgs), len(events), stream)
		}
		check := func(m sseMessage, want *contracts.TaskEvent) {
			t.Helper()
			if !m.hasID || m.id != want.EventID.String() {
				t.Fatalf("id %q (set %v), want %s: %q", m.id, m.hasID, want.EventID, stream)
			}
			var got contracts.TaskEvent
			if err := json.Unmarshal([]byte(m.data), &got); err != nil {
				t.Fatalf("data does not decode: %v: %q", err, m.data)
			}
			if got.EventID != want.EventID || got.Type != want.Type || got.TaskID != validUTF8(want.TaskID) ||
				!bytes.Equal(got.Payload, want.Payload) {
				t.Fatalf("decoded %+v, want %+v", got, want)
			}
		}
		for i := range events {
			check(msgs[i], &events[i])
			check(msgs[len(events)+1+i], &events[i])
		}
		beat := msgs[len(events)]
		if beat.hasID {
			t.Fatalf("heartbeat carries an id: %q", beat.id)
		}
		frame, err := frames.Decode([]byte(beat.data))
		if err != nil || frame.Heartbeat == nil || frame.Heartbeat.TaskID != validUTF8(taskID) {
			t.Fatalf("heartbeat %q: %+v %v", beat.data, frame, err)
		}
	})
}

// validUTF8 replaces each invalid byte of s with U+FFFD, as the JSON
// encoder does.
func validUTF8(s string) string { return string([]rune(s)) }

package fiberbridge_test

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/fasthttp/websocket"
	"github.com/gofiber/fiber/v2"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/taskbridge/taskbridge-fiber/contracts"
	bridgeerr "github.com/taskbridge/taskbridge-fiber/errors"
	"github.com/taskbridge/taskbridge-fiber/fiberbridge"
	"github.com/taskbridge/taskbridge-fiber/internal/e2etest"
)

// with returns a copy of h that reports to t (for subtests).
func (h *hsrv) with(t testing.TB) *hsrv {
	c := *h
	c.t = t
	return &c
}

// badHTTP is one bad request and the envelope it must answer.
type badHTTP struct {
	name        string
	method      string
	path        string
	contentType string
	header      http.Header
	body        []byte
	raw         string // a whole raw request instead (what net/http refuses to send)
	status      int
	code        bridgeerr.Code
	detail      string // a details key that must be present...
	value       any    // ...with this value (when not nil)
}

func jsonCase(name, body string, status int, detail string, value any) badHTTP {
	return badHTTP{name: "create JSON: " + name, method: http.MethodPost, path: "/api/v1/tasks", contentType: "application/json",
		body: []byte(body), status: status, code: bridgeerr.CodeInvalidRequest, detail: detail, value: value}
}

func multipartCase(t testing.TB, name string, fields map[string]string, files []formFile, status int, code bridgeerr.Code, detail string) badHTTP {
	ct, body := multipartBody(t, fields, files...)
	return badHTTP{name: "create multipart: " + name, method: http.MethodPost, path: "/api/v1/tasks", contentType: ct,
		body: body, status: status, code: code, detail: detail}
}

func pollCase(taskID, query string, status int, code bridgeerr.Code, param string) badHTTP {
	return badHTTP{name: "poll " + query, method: http.MethodGet, path: "/api/v1/tasks/" + taskID + "/events" + query,
		status: status, code: code, detail: "parameter", value: param}
}

// TestBadInputEndToEnd sends every kind of bad input SECURITY.md lists to a
// real server: each answers the stable envelope with the right 4xx (or,
// on a WebSocket, the documented close code and reason), and after each
// the server still creates and polls a task. Unknown fields are rejected
// everywhere a client sends JSON or a form (create, actions, cancel,
// subscribe frames); unknown query parameters are ignored.
func TestBadInputEndToEnd(t *testing.T) {
	t.Parallel()
	var uploaded []contracts.Attachment
	h := startHardened(t, hopts{bridge: func(cfg *fiberbridge.Config) {
		cfg.MaxUploadBytes = 1024
		cfg.AllowedUploadTypes = []string{"text/plain", "image/*"}
		cfg.Upload = uploadPolicyFunc(func(_ context.Context, _ contracts.AuthContext, atts []contracts.Attachment) error {
			uploaded = append([]contracts.Attachment(nil), atts...)
			return nil
		})
	}})
	id := h.create("alice", "test.gated", nil)
	t.Cleanup(func() { close(h.gates.get(id)) })
	base := map[string]string{"clientRequestId": "mp-1", "taskType": "test.steps"}
	withField := func(k, v string) map[string]string {
		m := map[string]string{"clientRequestId": contracts.NewID(), "taskType": "test.steps"}
		m[k] = v
		return m
	}
	file := func(name, ct string, size int) formFile {
		return formFile{field: "attachment", filename: name, contentType: ct, content: bytes.Repeat([]byte("x"), size)}
	}
	deep := `{"clientRequestId":"d","taskType":"test.steps","input":{"a":` + strings.Repeat("[", 20000) + strings.Repeat("]", 20000) + `}}`
	long := strings.Repeat("a", contracts.MaxTaskIDLen+1)
	raw := func(path string, headers ...string) string {
		return "GET " + path + " HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer alice\r\n" + strings.Join(headers, "") + "Connection: close\r\n\r\n"
	}
	notFound := bridgeerr.CodeTaskNotFound
	invalid := bridgeerr.CodeInvalidRequest
	validation := bridgeerr.CodeRequestValidation
	upload := bridgeerr.CodeUploadValidation

	cases := []badHTTP{
		jsonCase("malformed", `{"clientRequestId":`, 400, "reason", nil),
		jsonCase("an array", `[1,2]`, 400, "reason", "not an object"),
		jsonCase("a string", `"x"`, 400, "reason", "not an object"),
		jsonCase("a number", `5`, 400, "reason", "not an object"),
		jsonCase("null", `null`, 400, "reason", "not an object"),
		jsonCase("empty body", ``, 400, "reason", "empty body"),
		jsonCase("only spaces", " \n\t ", 400, "reason", "empty body"),
		jsonCase("missing clientRequestId", `{"taskType":"test.steps"}`, 400, "field", "clientRequestId"),
		jsonCase("empty clientRequestId", `{"clientRequestId":"","taskType":"test.steps"}`, 400, "field", "clientRequestId"),
		jsonCase("missing taskType", `{"clientRequestId":"a"}`, 400, "field", "taskType"),
		jsonCase("empty taskType", `{"clientRequestId":"a","taskType":""}`, 400, "field", "taskType"),
		jsonCase("clientRequestId a number", `{"clientRequestId":5,"taskType":"test.steps"}`, 400, "field", "clientRequestId"),
		jsonCase("taskType an object", `{"clientRequestId":"a","taskType":{}}`, 400, "field", "taskType"),
		jsonCase("input a string", `{"clientRequestId":"a","taskType":"test.steps","input":"{}"}`, 400, "field", "input"),
		jsonCase("input an array", `{"clientRequestId":"a","taskType":"test.steps","input":[1]}`, 400, "field", "input"),
		jsonCase("metadata a number", `{"clientRequestId":"a","taskType":"test.steps","metadata":1}`, 400, "field", "metadata"),
		jsonCase("unknown field (rejected)", `{"clientRequestId":"a","taskType":"test.steps","priority":1}`, 400, "field", "priority"),
		jsonCase("trailing data", `{"clientRequestId":"a","taskType":"test.steps"}{}`, 400, "reason", nil),
		jsonCase("non-UTF-8", "{\"clientRequestId\":\"\xff\xfe\",\"taskType\":\"test.steps\"}", 400, "reason", "invalid UTF-8"),
		jsonCase("NUL in clientRequestId", `{"clientRequestId":"a\u0000b","taskType":"test.steps"}`, 400, "field", "clientRequestId"),
		jsonCase("over-long clientRequestId", `{"clientRequestId":"`+strings.Repeat("x", 257)+`","taskType":"test.steps"}`, 400, "field", "clientRequestId"),
		jsonCase("over-long taskType", `{"clientRequestId":"a","taskType":"`+strings.Repeat("x", 257)+`"}`, 400, "field", "taskType"),
		jsonCase("unknown task type", `{"clientRequestId":"a","taskType":"no.such"}`, 400, "taskType", "no.such"),
		jsonCase("input nested 20,000 deep", deep, 400, "reason", nil),
		jsonCase("over MaxBodyBytes (1.5 MB < the app's BodyLimit)", `{"clientRequestId":"`+strings.Repeat("x", 1536<<10)+`"}`, 413, "maxBytes", float64(fiberbridge.DefaultMaxBodyBytes)),
		{name: "create: unsupported content type", method: http.MethodPost, path: "/api/v1/tasks", contentType: "text/plain",
			body: []byte(`{}`), status: 415, code: invalid, detail: "contentType", value: "text/plain"},
		{name: "create: no content type", method: http.MethodPost, path: "/api/v1/tasks",
			body: []byte(`{}`), status: 415, code: invalid, detail: "contentType", value: "none"},
		{name: "create: unparsable content type", method: http.MethodPost, path: "/api/v1/tasks", contentType: "application/json; ;=",
			body: []byte(`{}`), status: 415, code: invalid, detail: "contentType"},
		{name: "create: compressed body", method: http.MethodPost, path: "/api/v1/tasks", contentType: "application/json",
			header: http.Header{"Content-Encoding": {"gzip"}}, body: []byte{0x1f, 0x8b}, status: 415, code: invalid, detail: "contentEncoding", value: "gzip"},

		multipartCase(t, "file over MaxUploadBytes", base, []formFile{file("a.txt", "text/plain", 1025)}, 413, upload, "maxBytes"),
		multipartCase(t, "eleven files (MaxUploads 10)", withField("input", "{}"), []formFile{
			file("1", "text/plain", 1), file("2", "text/plain", 1), file("3", "text/plain", 1), file("4", "text/plain", 1),
			file("5", "text/plain", 1), file("6", "text/plain", 1), file("7", "text/plain", 1), file("8", "text/plain", 1),
			file("9", "text/plain", 1), file("10", "text/plain", 1), file("11", "text/plain", 1)}, 400, upload, "maxUploads"),
		multipartCase(t, "disallowed content type", base, []formFile{file("a.exe", "application/x-msdownload", 2)}, 400, upload, "contentType"),
		multipartCase(t, "unparsable file content type", base, []formFile{file("a.txt", "text/plain; ;=", 2)}, 400, upload, "reason"),
		multipartCase(t, "file name that is a separator", base, []formFile{file("/", "text/plain", 1)}, 400, upload, "reason"),
		multipartCase(t, "file name ..", base, []formFile{file("x/..", "text/plain", 1)}, 400, upload, "reason"),
		// fasthttp pre-parses multipart bodies (unless the app sets
		// DisablePreParseMultipartForm): a malformed one is its 400,
		// rendered by ErrorHandler, before the route runs.
		multipartCase(t, "raw NUL in the file name (malformed part)", base, []formFile{file("a\x00b.txt", "text/plain", 1)}, 400, invalid, ""),
		multipartCase(t, "NUL in the file name, RFC 2231", base, []formFile{file("*=UTF-8''a%00b.txt", "text/plain", 1)}, 400, upload, "reason"),
		multipartCase(t, "line feed in the file name, RFC 2231", base, []formFile{file("*=UTF-8''a%0Ab.txt", "text/plain", 1)}, 400, upload, "reason"),
		multipartCase(t, "invalid UTF-8 file name, RFC 2231", base, []formFile{file("*=UTF-8''a%FFb.txt", "text/plain", 1)}, 400, upload, "reason"),
		multipartCase(t, "input not an object", withField("input", `[1]`), nil, 400, invalid, "field"),
		multipartCase(t, "input a JSON string", withField("input", `"x"`), nil, 400, invalid, "field"),
		multipartCase(t, "input not JSON", withField("input", `{`), nil, 400, invalid, "field"),
		multipartCase(t, "metadata not an object", withField("metadata", `true`), nil, 400, invalid, "field"),
		multipartCase(t, "unknown text field (rejected)", withField("priority", "1"), nil, 400, invalid, "field"),
		multipartCase(t, "file in an unknown field", base, []formFile{{field: "upload", filename: "a.txt", contentType: "text/plain", content: []byte("x")}}, 400, invalid, "field"),
		multipartCase(t, "attachment as a text field", withField("attachment", "x"), nil, 400, upload, "field"),
		multipartCase(t, "missing taskType", map[string]string{"clientRequestId": "m"}, nil, 400, invalid, "field"),
		multipartCase(t, "over-long clientRequestId", map[string]string{"clientRequestId": strings.Repeat("c", 300), "taskType": "t"}, nil, 400, invalid, "field"),
		multipartCase(t, "non-UTF-8 field", map[string]string{"clientRequestId": "\xff", "taskType": "t"}, nil, 400, invalid, "field"),
		{name: "create multipart: repeated field", method: http.MethodPost, path: "/api/v1/tasks",
			contentType: "multipart/form-data; boundary=b", status: 400, code: invalid, detail: "reason", value: "repeated field",
			body: []byte("--b\r\nContent-Disposition: form-data; name=\"clientRequestId\"\r\n\r\na\r\n" +
				"--b\r\nContent-Disposition: form-data; name=\"clientRequestId\"\r\n\r\nb\r\n--b--\r\n")},
		{name: "create multipart: garbage body", method: http.MethodPost, path: "/api/v1/tasks",
			contentType: "multipart/form-data; boundary=b", body: []byte("this is not multipart"), status: 400, code: invalid},
		{name: "create multipart: no boundary", method: http.MethodPost, path: "/api/v1/tasks",
			contentType: "multipart/form-data", body: []byte("--b\r\n\r\n--b--\r\n"), status: 400, code: invalid, detail: "reason"},
		{name: "create multipart: empty body", method: http.MethodPost, path: "/api/v1/tasks",
			contentType: "multipart/form-data; boundary=b", status: 400, code: invalid, detail: "reason"},

		pollCase(id, "?maxEvents=0", 422, validation, "maxEvents"),
		pollCase(id, "?maxEvents=-1", 422, validation, "maxEvents"),
		pollCase(id, "?maxEvents=501", 422, validation, "maxEvents"),
		pollCase(id, "?maxEvents=abc", 422, validation, "maxEvents"),
		pollCase(id, "?maxEvents=1e3", 422, validation, "maxEvents"),
		pollCase(id, "?maxEvents=%205", 422, validation, "maxEvents"),
		pollCase(id, "?maxEvents=99999999999999999999999", 422, validation, "maxEvents"),
		pollCase(id, "?waitTimeoutMs=-1", 422, validation, "waitTimeoutMs"),
		pollCase(id, "?waitTimeoutMs=60001", 422, validation, "waitTimeoutMs"),
		pollCase(id, "?waitTimeoutMs=1.5", 422, validation, "waitTimeoutMs"),
		pollCase(id, "?waitTimeoutMs=0x10", 422, validation, "waitTimeoutMs"),
		pollCase(id, "?waitTimeoutMs=99999999999999999999999", 422, validation, "waitTimeoutMs"),
		pollCase(id, "?afterEventId=abc", 400, invalid, "afterEventId"),
		pollCase(id, "?afterEventId=-1", 400, invalid, "afterEventId"),
		pollCase(id, "?afterEventId=%2B1", 400, invalid, "afterEventId"),
		pollCase(id, "?afterEventId=1-", 400, invalid, "afterEventId"),
		pollCase(id, "?afterEventId=1-2-3", 400, invalid, "afterEventId"),
		pollCase(id, "?afterEventId=%00", 400, invalid, "afterEventId"),
		pollCase(id, "?afterEventId="+strings.Repeat("9", 100), 400, invalid, "afterEventId"),

		{name: "SSE: Last-Event-ID garbage", method: http.MethodGet, path: "/api/v1/tasks/" + id + "/events/stream",
			header: http.Header{"Last-Event-Id": {"garbage"}}, status: 400, code: invalid, detail: "parameter", value: "Last-Event-ID"},
		{name: "SSE: Last-Event-ID 3 KB", method: http.MethodGet, path: "/api/v1/tasks/" + id + "/events/stream",
			header: http.Header{"Last-Event-Id": {strings.Repeat("1", 3<<10)}}, status: 400, code: invalid, detail: "parameter", value: "Last-Event-ID"},
		{name: "SSE: Last-Event-ID 10 KB (over the server's header buffer)", raw: raw("/api/v1/tasks/"+id+"/events/stream",
			"Last-Event-ID: "+strings.Repeat("7", 10<<10)+"\r\n"), status: 431, code: invalid},
		{name: "SSE: lastEventId query garbage", method: http.MethodGet, path: "/api/v1/tasks/" + id + "/events/stream?lastEventId=x-y",
			status: 400, code: invalid, detail: "parameter", value: "lastEventId"},
		{name: "SSE: foreign task", method: http.MethodGet, path: "/api/v1/tasks/" + id + "/events/stream", status: 404, code: notFound},

		{name: "task id with a slash", method: http.MethodGet, path: "/api/v1/tasks/a/b/events", status: 404, code: bridgeerr.CodeRouteNotFound},
		{name: "task id with an encoded slash", method: http.MethodGet, path: "/api/v1/tasks/a%2Fb/events", status: 404, code: notFound},
		{name: "task id ..", method: http.MethodGet, path: "/api/v1/tasks/../events", status: 404, code: notFound},
		{name: "task id .. encoded", method: http.MethodGet, path: "/api/v1/tasks/%2E%2E/events/stream", status: 404, code: notFound},
		{name: "task id %00", method: http.MethodGet, path: "/api/v1/tasks/%00/events", status: 404, code: notFound},
		{name: "task id %00 on cancel", method: http.MethodPost, path: "/api/v1/tasks/%00/cancel", status: 404, code: notFound},
		{name: "task id over 256 bytes: poll", method: http.MethodGet, path: "/api/v1/tasks/" + long + "/events",
			status: 400, code: invalid, detail: "parameter", value: "taskId"},
		{name: "task id over 256 bytes: SSE", method: http.MethodGet, path: "/api/v1/tasks/" + long + "/events/stream",
			status: 400, code: invalid, detail: "parameter", value: "taskId"},
		{name: "task id over 256 bytes: cancel", method: http.MethodPost, path: "/api/v1/tasks/" + long + "/cancel",
			status: 400, code: invalid, detail: "parameter", value: "taskId"},
		{name: "task id over 256 bytes: action", method: http.MethodPost, path: "/api/v1/tasks/" + long + "/actions", contentType: "application/json",
			body: []byte(`{"clientActionId":"a","suspendId":"s","actionType":"approve"}`), status: 400, code: invalid, detail: "parameter", value: "taskId"},
		{name: "task id of 10 KB (over the server's header buffer)", raw: raw("/api/v1/tasks/" + strings.Repeat("b", 10<<10) + "/events"),
			status: 431, code: invalid},

		{name: "action: unknown field (rejected)", method: http.MethodPost, path: "/api/v1/tasks/" + id + "/actions", contentType: "application/json",
			body: []byte(`{"clientActionId":"a","suspendId":"s","actionType":"approve","extra":1}`), status: 400, code: invalid, detail: "field", value: "extra"},
		{name: "action: not an object", method: http.MethodPost, path: "/api/v1/tasks/" + id + "/actions", contentType: "application/json",
			body: []byte(`[]`), status: 400, code: invalid, detail: "reason"},
		{name: "cancel: unknown field (rejected)", method: http.MethodPost, path: "/api/v1/tasks/" + id + "/cancel", contentType: "application/json",
			body: []byte(`{"reason":"x","force":true}`), status: 400, code: invalid, detail: "field", value: "force"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var r e2etest.Response
			if tc.raw != "" {
				var err error
				r, err = e2etest.RawExchange(h.srv.Addr, []byte(tc.raw), hwait)
				require.NoError(t, err)
			} else {
				token := "alice"
				if strings.Contains(tc.name, "foreign") {
					token = "mallory"
				}
				r = e2etest.MustDo(t, h.client, e2etest.Request{Method: tc.method, URL: h.srv.Base + tc.path, Token: token,
					ContentType: tc.contentType, Header: tc.header, Body: tc.body})
			}
			env := e2etest.CheckEnvelope(t, r, tc.status, tc.code)
			if tc.detail != "" {
				require.Contains(t, env.Details, tc.detail, "%+v", env)
				if tc.value != nil {
					assert.Equal(t, tc.value, env.Details[tc.detail])
				}
			}
			assert.NotContains(t, string(r.Body), "goroutine", "no stack traces")
			h.with(t).healthy()
		})
	}

	// A file name with directories is not an error: it is reduced to its
	// base name, and nothing else of the path is kept.
	t.Run("create multipart: file name with path separators is reduced", func(t *testing.T) {
		ct, body := multipartBody(t, withField("input", "{}"), formFile{field: "attachment",
			filename: `../../etc/passwd`, contentType: "text/plain", content: []byte("x")},
			formFile{field: "attachments", filename: `C:\Windows\..\evil.png`, contentType: "image/png", content: []byte("y")})
		r := h.with(t).do(http.MethodPost, "/api/v1/tasks", "alice", ct, body)
		require.Equal(t, http.StatusCreated, r.Status, string(r.Body))
		require.Len(t, uploaded, 2)
		assert.Equal(t, "passwd", uploaded[0].Filename)
		assert.Equal(t, "evil.png", uploaded[1].Filename)
	})

	// The same requests are fine with the bad part taken out, so the
	// cases above fail for the reason they name.
	t.Run("controls", func(t *testing.T) {
		hh := h.with(t)
		_, r := hh.poll("alice", id, "?maxEvents=500&waitTimeoutMs=0&afterEventId=0-0&unknown=1")
		require.Equal(t, http.StatusOK, r.Status, string(r.Body))
		s, r := hh.sse(nil, "alice", id, "", http.Header{"Last-Event-Id": {"1-0"}})
		require.NotNil(t, s, "%d %s", r.Status, r.Body)
		ct, body := multipartBody(t, withField("input", `{"steps":1}`), file("a.txt", "text/plain", 1024))
		r = hh.do(http.MethodPost, "/api/v1/tasks", "alice", ct, body)
		require.Equal(t, http.StatusCreated, r.Status, string(r.Body))
	})
}

// TestMalformedMultipartWithoutPreParse: on an app that leaves multipart
// parsing to the handlers (fiber.Config.DisablePreParseMultipartForm, as
// SECURITY.md recommends), a malformed body is the bridge's own 400 with a
// stable message and a reason, and a body for another route is never
// parsed.
func TestMalformedMultipartWithoutPreParse(t *testing.T) {
	t.Parallel()
	h := startHardened(t, hopts{app: func(cfg *fiber.Config) { cfg.DisablePreParseMultipartForm = true }})
	for _, body := range []string{
		"this is not multipart",
		"--b\r\nContent-Disposition: form-data; name=\"attachment\"; filename=\"a\x00b\"\r\n\r\nx\r\n--b--\r\n",
	} {
		r := h.do(http.MethodPost, "/api/v1/tasks", "alice", "multipart/form-data; boundary=b", []byte(body))
		env := e2etest.CheckEnvelope(t, r, http.StatusBadRequest, bridgeerr.CodeInvalidRequest)
		assert.Equal(t, "malformed multipart body", env.Message)
		assert.Equal(t, "not a valid multipart/form-data body", env.Details["reason"])
	}
	h.healthy()
}

// TestBadTaskIDsWithUnescapedPaths: on an app that unescapes paths
// (fiber.Config.UnescapePath), %00 and other control characters reach the
// bridge as bytes and are refused with 400; an encoded slash becomes a
// path separator and no route matches (404).
func TestBadTaskIDsWithUnescapedPaths(t *testing.T) {
	t.Parallel()
	h := startHardened(t, hopts{app: func(cfg *fiber.Config) { cfg.UnescapePath = true }})
	for _, tc := range []struct {
		path   string
		status int
		code   bridgeerr.Code
	}{
		{"/api/v1/tasks/%00/events", 400, bridgeerr.CodeInvalidRequest},
		{"/api/v1/tasks/a%0Ab/events/stream", 400, bridgeerr.CodeInvalidRequest},
		{"/api/v1/tasks/%FF/events", 400, bridgeerr.CodeInvalidRequest},
		{"/api/v1/tasks/a%2Fb/events", 404, bridgeerr.CodeRouteNotFound},
		{"/api/v1/tasks/%2E%2E/events", 404, bridgeerr.CodeTaskNotFound},
	} {
		t.Run(tc.path, func(t *testing.T) {
			r := h.with(t).do(http.MethodGet, tc.path, "alice", "", nil)
			env := e2etest.CheckEnvelope(t, r, tc.status, tc.code)
			if tc.status == 400 {
				assert.Equal(t, "taskId", env.Details["parameter"])
			}
		})
	}
	h.healthy()
}

// wsSend is a raw client frame: opcode, fin, mask and payload.
func wsFrame(op byte, fin, masked bool, payload []byte) []byte {
	b0 := op
	if fin {
		b0 |= 0x80
	}
	out := []byte{b0}
	n := len(payload)
	var b1 byte
	if masked {
		b1 = 0x80
	}
	switch {
	case n <= 125:
		out = append(out, b1|byte(n))
	case n <= 0xFFFF:
		out = append(out, b1|126, byte(n>>8), byte(n))
	default:
		out = append(out, b1|127, 0, 0, 0, 0, byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
	}
	if !masked {
		return append(out, payload...)
	}
	key := [4]byte{0x12, 0x34, 0x56, 0x78}
	out = append(out, key[:]...)
	for i, c := range payload {
		out = append(out, c^key[i&3])
	}
	return out
}

// TestBadWebSocketFramesEndToEnd: every bad first frame closes the
// socket with 1008 and the documented reason, as do a second subscribe
// frame and any data frame after the subscribe; the server stays healthy
// after each.
func TestBadWebSocketFramesEndToEnd(t *testing.T) {
	t.Parallel()
	// Long enough that a loaded machine reads every frame sent right after
	// the upgrade well before it.
	h := startHardened(t, hopts{bridge: func(cfg *fiberbridge.Config) {
		cfg.Stream.WSHandshakeTimeout = time.Second
	}})
	id := h.create("alice", "test.gated", nil)
	t.Cleanup(func() { close(h.gates.get(id)) })
	sub := func(task string) []byte {
		return []byte(`{"action":"subscribe","taskId":"` + task + `"}`)
	}
	text := func(s string) func(c *e2etest.WS) error {
		return func(c *e2etest.WS) error { return c.Conn.WriteMessage(websocket.TextMessage, []byte(s)) }
	}
	rawFrames := func(frames ...[]byte) func(c *e2etest.WS) error {
		return func(c *e2etest.WS) error {
			_, err := c.Conn.NetConn().Write(bytes.Join(frames, nil))
			return err
		}
	}
	const invalidFrame = "invalid subscribe frame"
	cases := []struct {
		name    string
		send    func(c *e2etest.WS) error
		confirm bool // the subscribe succeeds before the violation
		reason  string
	}{
		{"binary first frame", func(c *e2etest.WS) error { return c.Conn.WriteMessage(websocket.BinaryMessage, sub(id)) }, false, "binary frame"},
		{"empty text frame", text(""), false, invalidFrame},
		{"not JSON", text("hello"), false, invalidFrame},
		{"JSON array", text(`[{"action":"subscribe"}]`), false, invalidFrame},
		{"JSON string", text(`"subscribe"`), false, invalidFrame},
		{"JSON null", text(`null`), false, invalidFrame},
		{"wrong action", text(`{"action":"unsubscribe","taskId":"` + id + `"}`), false, invalidFrame},
		{"missing taskId", text(`{"action":"subscribe"}`), false, invalidFrame},
		{"taskId a number", text(`{"action":"subscribe","taskId":5}`), false, invalidFrame},
		{"unknown field (rejected)", text(`{"action":"subscribe","taskId":"` + id + `","since":1}`), false, invalidFrame},
		{"malformed lastEventId", text(`{"action":"subscribe","taskId":"` + id + `","lastEventId":"x"}`), false, invalidFrame},
		{"lastEventId a number", text(`{"action":"subscribe","taskId":"` + id + `","lastEventId":5}`), false, invalidFrame},
		{"over-long taskId", text(`{"action":"subscribe","taskId":"` + strings.Repeat("a", 300) + `"}`), false, invalidFrame},
		{"trailing data", text(`{"action":"subscribe","taskId":"` + id + `"} {}`), false, invalidFrame},
		{"invalid UTF-8", text("{\"action\":\"subscribe\",\"taskId\":\"\xff\"}"), false, invalidFrame},
		{"over the read limit", text(`{"action":"subscribe","taskId":"` + id + `","x":"` + strings.Repeat("x", 5000) + `"}`), false, "frame too large"},
		{"fragments over the read limit", rawFrames(wsFrame(0x1, false, true, bytes.Repeat([]byte("x"), 3000)),
			wsFrame(0x0, true, true, bytes.Repeat([]byte("x"), 3000))), false, "frame too large"},
		{"unmasked frame", rawFrames(wsFrame(0x1, true, false, sub(id))), false, "unmasked frame"},
		{"reserved opcode", rawFrames(wsFrame(0x3, true, true, sub(id))), false, "invalid frame"},
		{"reserved bits", rawFrames(append([]byte{0xC1}, wsFrame(0x1, true, true, sub(id))[1:]...)), false, "invalid frame"},
		{"continuation first", rawFrames(wsFrame(0x0, true, true, sub(id))), false, "invalid frame"},
		{"never sent (handshake timeout)", func(*e2etest.WS) error { return nil }, false, "handshake timeout"},
		{"only pings, no subscribe (handshake timeout)", func(c *e2etest.WS) error {
			return c.Conn.WriteControl(websocket.PingMessage, []byte("p"), time.Now().Add(hwait))
		}, false, "handshake timeout"},
		{"foreign task", text(string(sub(id))), false, string(bridgeerr.CodeTaskNotFound)},
		{"missing task", text(string(sub(contracts.NewID()))), false, string(bridgeerr.CodeTaskNotFound)},
		{"a second subscribe frame", func(c *e2etest.WS) error {
			if err := c.Conn.WriteMessage(websocket.TextMessage, sub(id)); err != nil {
				return err
			}
			return c.Conn.WriteMessage(websocket.TextMessage, sub(id))
		}, true, "unexpected frame"},
		{"a text frame after subscribe", rawFrames(wsFrame(0x1, true, true, sub(id)), wsFrame(0x1, true, true, []byte("hi"))), true, "unexpected frame"},
		{"a binary frame after subscribe", rawFrames(wsFrame(0x1, true, true, sub(id)), wsFrame(0x2, true, true, []byte{1})), true, "unexpected frame"},
		{"an unmasked frame after subscribe", rawFrames(wsFrame(0x1, true, true, sub(id)), wsFrame(0xA, true, false, nil)), true, "unmasked frame"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			hh := h.with(t)
			token := "alice"
			if strings.Contains(tc.name, "foreign") {
				token = "mallory"
			}
			c, r := hh.dial(nil, token)
			require.NotNil(t, c, "%d %s", r.Status, r.Body)
			require.NoError(t, tc.send(c))
			if tc.confirm {
				_, err := c.Confirm(hwait)
				require.NoError(t, err)
			}
			_, code, reason, err := c.ReadToClose(hwait)
			require.NoError(t, err)
			assert.Equal(t, websocket.ClosePolicyViolation, code)
			assert.Equal(t, tc.reason, reason)
			hh.healthy()
		})
	}

	// Controls: a well-formed subscribe works, and pings before it are
	// answered.
	t.Run("controls", func(t *testing.T) {
		hh := h.with(t)
		c, _ := hh.dial(nil, "alice")
		require.NotNil(t, c)
		pong := make(chan string, 1)
		c.Conn.SetPongHandler(func(data string) error {
			pong <- data
			return nil
		})
		require.NoError(t, c.Conn.WriteControl(websocket.PingMessage, []byte("p"), time.Now().Add(hwait)))
		require.NoError(t, c.Subscribe(id, nil))
		_, err := c.Confirm(hwait)
		require.NoError(t, err)
		assert.Equal(t, "p", recv(t, pong, "the pong"), "the pong comes before the confirmation")
		ev, err := c.NextEvent(hwait)
		require.NoError(t, err)
		assert.Equal(t, contracts.EventStarted, ev.Type)
	})
}

// TestUnknownFieldPolicy states the policy in one place: the bridge
// rejects unknown fields in every body a client sends (400 naming the
// field; WebSocket: 1008) and ignores unknown query parameters.
func TestUnknownFieldPolicy(t *testing.T) {
	t.Parallel()
	h := startHardened(t, hopts{})
	id := h.create("alice", "test.gated", nil)
	t.Cleanup(func() { close(h.gates.get(id)) })
	for _, tc := range []struct{ path, body string }{
		{"/api/v1/tasks", `{"clientRequestId":"u","taskType":"test.steps","zzz":1}`},
		{"/api/v1/tasks/" + id + "/actions", `{"clientActionId":"a","suspendId":"s","actionType":"x","zzz":1}`},
		{"/api/v1/tasks/" + id + "/cancel", `{"zzz":1}`},
	} {
		env := e2etest.CheckEnvelope(t, h.do(http.MethodPost, tc.path, "alice", "application/json", []byte(tc.body)),
			http.StatusBadRequest, bridgeerr.CodeInvalidRequest)
		assert.Equal(t, "zzz", env.Details["field"], tc.path)
		assert.Equal(t, "unknown field", env.Details["reason"], tc.path)
	}
	_, r := h.poll("alice", id, "?zzz=1")
	assert.Equal(t, http.StatusOK, r.Status)
	c, _ := h.dial(nil, "alice")
	require.NotNil(t, c)
	require.NoError(t, c.Conn.WriteMessage(websocket.TextMessage, []byte(fmt.Sprintf(`{"action":"subscribe","taskId":%q,"zzz":1}`, id))))
	_, code, _, err := c.ReadToClose(hwait)
	require.NoError(t, err)
	assert.Equal(t, websocket.ClosePolicyViolation, code)
}

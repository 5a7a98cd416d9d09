// Package conformance checks frames and response bodies against the
// TaskBridge v1 protocol for the project's tests: every value must pass the
// strict decoders in contracts and, when the reference protocol directory
// (../shared/protocol next to the module root, or $TASKBRIDGE_PROTOCOL_DIR)
// exists, its JSON Schemas, validated with a JSON Schema library. The
// reference files are read in place, never copied into the project.
package conformance

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"go.yaml.in/yaml/v3"

	"github.com/taskbridge/taskbridge-fiber/contracts"
)

// Schema names the protocol shapes Validate knows.
type Schema string

// Shapes of the protocol, by OpenAPI component name.
const (
	TaskEvent             Schema = "TaskEvent"
	SubscriptionConfirmed Schema = "WebSocketSubscriptionConfirmed"
	Heartbeat             Schema = "WebSocketHeartbeat"
	PollEventsResponse    Schema = "PollEventsResponse"
	TaskCreatedResponse   Schema = "TaskCreatedResponse"
	CancelTaskResponse    Schema = "CancelTaskResponse"
	ErrorResponse         Schema = "ErrorResponse"
	ActionResponse        Schema = "TaskClientActionResponse"
	ActionRequest         Schema = "TaskClientActionRequest"
)

type catalog struct {
	dir     string
	schemas map[Schema]*jsonschema.Schema
	err     error
}

var (
	loadOnce sync.Once
	loaded   catalog
)

// ProtocolDir returns the reference protocol directory and whether it exists.
func ProtocolDir() (string, bool) {
	if dir := os.Getenv("TASKBRIDGE_PROTOCOL_DIR"); dir != "" {
		_, err := os.Stat(filepath.Join(dir, "schemas", "task_event.schema.json"))
		return dir, err == nil
	}
	wd, err := os.Getwd()
	if err != nil {
		return "", false
	}
	for dir := wd; ; {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			p := filepath.Join(dir, "..", "shared", "protocol")
			_, err := os.Stat(filepath.Join(p, "schemas", "task_event.schema.json"))
			return p, err == nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", false
		}
		dir = parent
	}
}

func load() catalog {
	loadOnce.Do(func() {
		dir, ok := ProtocolDir()
		if !ok {
			return
		}
		loaded = compile(dir)
	})
	return loaded
}

func compile(dir string) catalog {
	cat := catalog{dir: dir, schemas: map[Schema]*jsonschema.Schema{}}
	abs, err := filepath.Abs(dir)
	if err != nil {
		cat.err = err
		return cat
	}
	openapiPath := filepath.Join(abs, "openapi", "taskbridge.openapi.yaml")
	raw, err := os.ReadFile(openapiPath)
	if err != nil {
		cat.err = err
		return cat
	}
	var doc any
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		cat.err = fmt.Errorf("openapi: %w", err)
		return cat
	}
	doc = openAPIToJSONSchema(doc)
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	c.AssertFormat()
	openapiURL := "file://" + filepath.ToSlash(openapiPath)
	if err := c.AddResource(openapiURL, doc); err != nil {
		cat.err = err
		return cat
	}
	for _, s := range []Schema{TaskEvent, SubscriptionConfirmed, Heartbeat, PollEventsResponse,
		TaskCreatedResponse, CancelTaskResponse, ErrorResponse, ActionResponse, ActionRequest} {
		sch, err := c.Compile(openapiURL + "#/components/schemas/" + string(s))
		if err != nil {
			cat.err = fmt.Errorf("compile %s: %w", s, err)
			return cat
		}
		cat.schemas[s] = sch
	}
	return cat
}

// openAPIToJSONSchema converts the OpenAPI 3.0 dialect used by the
// reference document into JSON Schema: `nullable: true` becomes a "null"
// member of the type, and YAML maps become JSON objects.
func openAPIToJSONSchema(v any) any {
	switch n := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(n))
		for k, val := range n {
			out[k] = openAPIToJSONSchema(val)
		}
		if nullable, _ := out["nullable"].(bool); nullable {
			delete(out, "nullable")
			if t, ok := out["type"].(string); ok {
				out["type"] = []any{t, "null"}
			}
		}
		return out
	case []any:
		out := make([]any, len(n))
		for i, val := range n {
			out[i] = openAPIToJSONSchema(val)
		}
		return out
	case int:
		return jsonNumber(n)
	}
	return v
}

func jsonNumber(n int) any {
	var f any
	_ = yaml.Unmarshal([]byte(fmt.Sprint(n)), &f)
	return f
}

// Validate checks body against the named protocol schema. It returns
// (false, nil) when the reference protocol is absent, so callers skip that
// part without failing.
func Validate(s Schema, body []byte) (checked bool, err error) {
	cat := load()
	if cat.schemas == nil && cat.err == nil {
		return false, nil
	}
	if cat.err != nil {
		return true, fmt.Errorf("load protocol schemas from %s: %w", cat.dir, cat.err)
	}
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(body))
	if err != nil {
		return true, fmt.Errorf("%s: not JSON: %w", s, err)
	}
	if err := cat.schemas[s].Validate(v); err != nil {
		return true, fmt.Errorf("%s: %w", s, err)
	}
	return true, nil
}

// CheckFrame asserts that a server stream frame (an event, a
// SUBSCRIPTION_CONFIRMED or a HEARTBEAT) passes the strict decoder and,
// when available, the protocol schema. It returns the decoded frame.
func CheckFrame(t testing.TB, frame []byte) contracts.ServerFrame {
	t.Helper()
	f, err := contracts.DecodeServerFrame(frame)
	if err != nil {
		t.Fatalf("frame fails the strict decoder: %v\n%s", err, frame)
	}
	if schema, ok := FrameSchema(f); ok {
		CheckBody(t, schema, frame)
	}
	return f
}

// FrameSchema names the protocol schema of a decoded server frame. It
// reports false for the SSE JSON heartbeat (the event envelope's shape
// with type HEARTBEAT, as taskbridge-fastapi sends it) and for the frames
// of a WebSocket following several tasks (SUBSCRIPTION_ERROR,
// UNSUBSCRIBED), which the reference has no schema for: the strict
// decoder is their check.
func FrameSchema(f contracts.ServerFrame) (Schema, bool) {
	switch {
	case f.Heartbeat != nil && f.Heartbeat.EventID != "",
		f.SubscriptionError != nil, f.Unsubscribed != nil:
		return "", false
	case f.Heartbeat != nil:
		return Heartbeat, true
	case f.Confirmation != nil:
		return SubscriptionConfirmed, true
	}
	return TaskEvent, true
}

// CheckBody asserts that body validates against the named schema when the
// reference protocol is present.
func CheckBody(t testing.TB, s Schema, body []byte) {
	t.Helper()
	if _, err := Validate(s, body); err != nil {
		t.Fatalf("protocol schema: %v\n%s", err, truncate(body))
	}
}

func truncate(b []byte) string {
	const max = 2000
	if len(b) > max {
		return string(b[:max]) + "..."
	}
	return strings.TrimSpace(string(b))
}

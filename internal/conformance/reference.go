package conformance

import (
	"fmt"
	"os"
	"path/filepath"
	"sync"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"go.yaml.in/yaml/v3"
)

// referenceShapes are the shapes the reference protocol describes, by the
// name of its OpenAPI component.
var referenceShapes = []Schema{TaskEvent, SubscriptionConfirmed, Heartbeat, SubscribeRequest, PollEventsResponse,
	CreateRequest, TaskCreatedResponse, CancelTaskRequest, CancelTaskResponse, ErrorResponse, ActionResponse, ActionRequest}

type catalog struct {
	dir     string
	schemas map[Schema]*jsonschema.Schema
	err     error
}

var (
	loadOnce sync.Once
	loaded   catalog
)

// referenceSchema returns the reference's schema of s; nil when the
// reference directory is absent or does not describe s.
func referenceSchema(s Schema) (*jsonschema.Schema, error) {
	loadOnce.Do(func() {
		if dir, ok := ProtocolDir(); ok {
			loaded = compile(dir)
		}
	})
	if loaded.err != nil {
		return nil, fmt.Errorf("load reference schemas from %s: %w", loaded.dir, loaded.err)
	}
	return loaded.schemas[s], nil
}

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
	for _, s := range referenceShapes {
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

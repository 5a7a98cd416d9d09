package spec

import (
	"bytes"
	"embed"
	"encoding/json"
	"fmt"
	"io/fs"
	"regexp"
	"sort"
	"strings"
	"sync"
)

// SchemaBaseURI is the base of every schema file's $id: the $id of
// schemas/task_event.schema.json is SchemaBaseURI + "task_event.schema.json".
const SchemaBaseURI = "https://github.com/taskbridge/taskbridge-fiber/spec/schemas/"

// Operation ids of the document, one per route the bridge can mount.
const (
	OpCreateTask   = "createTask"
	OpListTasks    = "listTasks"
	OpGetTask      = "getTask"
	OpPollEvents   = "pollEvents"
	OpStreamEvents = "streamEvents"
	OpCancelTask   = "cancelTask"
	OpSubmitAction = "submitAction"
	OpWebSocket    = "webSocket"
	OpHealth       = "health"
	OpReady        = "ready"
	OpOpenAPI      = "openAPI"
	OpStreamTicket = "streamTicket"
)

// ExtensionKey marks the operations, schemas and fields that TaskBridge for
// Fiber adds to the TaskBridge v1 protocol.
const ExtensionKey = "x-taskbridge-extension"

//go:embed openapi.json schemas/*.schema.json
var files embed.FS

// Schemas returns the schema files (schemas/<name>.schema.json) as a
// read-only file system.
func Schemas() fs.FS {
	sub, err := fs.Sub(files, "schemas")
	if err != nil {
		panic("spec: embedded schemas: " + err.Error()) // the embed pattern guarantees the directory
	}
	return sub
}

var (
	bundleOnce sync.Once
	bundle     []byte
	bundleErr  error
)

// Document returns the bundled OpenAPI 3.1 document: openapi.json with every
// schema file inlined under components/schemas and every reference pointing
// inside the document. It is built once; the bytes are shared, do not
// modify them. It panics if the embedded files do not bundle, which the
// package's tests rule out.
func Document() []byte {
	bundleOnce.Do(func() { bundle, bundleErr = buildBundle() })
	if bundleErr != nil {
		panic("spec: " + bundleErr.Error())
	}
	return bundle
}

// buildBundle inlines the schema files into openapi.json.
func buildBundle() ([]byte, error) {
	var doc map[string]any
	if err := decode(files, "openapi.json", &doc); err != nil {
		return nil, err
	}
	schemas, _ := dig(doc, "components", "schemas").(map[string]any)
	if schemas == nil {
		return nil, fmt.Errorf("openapi.json has no components/schemas")
	}
	names := map[string]string{} // file name -> component name
	for name, v := range schemas {
		file, ok := fileRef(v)
		if !ok {
			return nil, fmt.Errorf("components/schemas/%s is not a reference to a schema file", name)
		}
		names[file] = name
	}
	for file, name := range names {
		var schema map[string]any
		if err := decode(files, "schemas/"+file, &schema); err != nil {
			return nil, err
		}
		if id, _ := schema["$id"].(string); id != SchemaBaseURI+file {
			return nil, fmt.Errorf("schemas/%s: $id %q, want %q", file, id, SchemaBaseURI+file)
		}
		delete(schema, "$id")
		delete(schema, "$schema") // the document's dialect is JSON Schema 2020-12 already
		if err := rewriteRefs(schema, name, names); err != nil {
			return nil, fmt.Errorf("schemas/%s: %w", file, err)
		}
		schemas[name] = schema
	}
	return marshal(doc)
}

// fileRef returns the file name of a {"$ref": "schemas/<file>"} object.
func fileRef(v any) (string, bool) {
	m, ok := v.(map[string]any)
	if !ok || len(m) != 1 {
		return "", false
	}
	ref, _ := m["$ref"].(string)
	file, ok := strings.CutPrefix(ref, "schemas/")
	return file, ok && !strings.Contains(file, "/")
}

// rewriteRefs points the references of the schema inlined as component name
// inside the bundle: "#..." to the component itself, "<file>#..." to the
// component of that file.
func rewriteRefs(v any, name string, names map[string]string) error {
	switch n := v.(type) {
	case map[string]any:
		for k, child := range n {
			if ref, ok := child.(string); ok && k == "$ref" {
				file, frag, _ := strings.Cut(ref, "#")
				target := name
				if file != "" {
					if target, ok = names[file]; !ok {
						return fmt.Errorf("reference %q names no schema file of the document", ref)
					}
				}
				n[k] = "#/components/schemas/" + target + frag
				continue
			}
			if err := rewriteRefs(child, name, names); err != nil {
				return err
			}
		}
	case []any:
		for _, child := range n {
			if err := rewriteRefs(child, name, names); err != nil {
				return err
			}
		}
	}
	return nil
}

// Route is one route a server mounted: the operation it serves, its HTTP
// method and its path as Fiber writes it ("/api/v1/tasks/:taskId", with the
// host's prefix and parameters).
type Route struct {
	OperationID string
	Method      string
	Path        string
}

// Build returns the OpenAPI document of routes: the bundled document whose
// paths are exactly the given routes, each with its operation from the
// document at the route's path. Fiber parameters (":name", also optional
// ":name?") become OpenAPI ones ("{name}"); the host's parameters that the
// operation does not declare are added as required string path
// parameters. It fails on an operation id the document lacks.
func Build(routes []Route) ([]byte, error) {
	var doc map[string]any
	dec := json.NewDecoder(bytes.NewReader(Document()))
	dec.UseNumber()
	if err := dec.Decode(&doc); err != nil {
		return nil, err
	}
	source, _ := doc["paths"].(map[string]any)
	ops := map[string]map[string]any{}
	for _, item := range source {
		for _, op := range item.(map[string]any) {
			if m, ok := op.(map[string]any); ok {
				if id, _ := m["operationId"].(string); id != "" {
					ops[id] = m
				}
			}
		}
	}
	paths := map[string]any{}
	for _, r := range routes {
		op, ok := ops[r.OperationID]
		if !ok {
			return nil, fmt.Errorf("spec: no operation %q in the document (route %s %s)", r.OperationID, r.Method, r.Path)
		}
		op = deepCopy(op).(map[string]any)
		path, params := openAPIPath(r.Path)
		addPathParams(op, params)
		item, _ := paths[path].(map[string]any)
		if item == nil {
			item = map[string]any{}
			paths[path] = item
		}
		item[strings.ToLower(r.Method)] = op
	}
	doc["paths"] = paths
	return marshal(doc)
}

// fiberParam matches a Fiber path parameter: ":name" or ":name?".
var fiberParam = regexp.MustCompile(`:([A-Za-z0-9_]+)\??`)

// openAPIPath converts a Fiber route path to an OpenAPI path template and
// lists its parameters.
func openAPIPath(p string) (string, []string) {
	var params []string
	out := fiberParam.ReplaceAllStringFunc(p, func(m string) string {
		name := strings.TrimSuffix(m[1:], "?")
		params = append(params, name)
		return "{" + name + "}"
	})
	if out == "" {
		out = "/"
	}
	return out, params
}

// addPathParams declares the path parameters op lacks.
func addPathParams(op map[string]any, names []string) {
	list, _ := op["parameters"].([]any)
	have := map[string]bool{}
	for _, p := range list {
		m, _ := p.(map[string]any)
		if ref, _ := m["$ref"].(string); ref == "#/components/parameters/TaskId" {
			have["taskId"] = true
		}
		if n, _ := m["name"].(string); n != "" && m["in"] == "path" {
			have[n] = true
		}
	}
	sort.Strings(names)
	for _, n := range names {
		if !have[n] {
			list = append(list, map[string]any{"name": n, "in": "path", "required": true, "schema": map[string]any{"type": "string"},
				"description": "A path parameter of the host application."})
			have[n] = true
		}
	}
	if len(list) > 0 {
		op["parameters"] = list
	}
}

func deepCopy(v any) any {
	switch n := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(n))
		for k, c := range n {
			out[k] = deepCopy(c)
		}
		return out
	case []any:
		out := make([]any, len(n))
		for i, c := range n {
			out[i] = deepCopy(c)
		}
		return out
	}
	return v
}

func dig(v any, keys ...string) any {
	for _, k := range keys {
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = m[k]
	}
	return v
}

func decode(fsys fs.FS, name string, v any) error {
	raw, err := fs.ReadFile(fsys, name)
	if err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	return nil
}

// marshal encodes without HTML escaping, with sorted keys (deterministic).
func marshal(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

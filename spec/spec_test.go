package spec_test

import (
	"bytes"
	"encoding/json"
	"io/fs"
	"sort"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/taskbridge/taskbridge-fiber/spec"
)

func decode(t *testing.T, raw []byte) map[string]any {
	t.Helper()
	var doc map[string]any
	require.NoError(t, json.Unmarshal(raw, &doc))
	return doc
}

// pointer resolves a JSON pointer ("/a/b") in doc.
func pointer(doc any, ptr string) (any, bool) {
	v := doc
	for _, tok := range strings.Split(strings.TrimPrefix(ptr, "/"), "/") {
		tok = strings.NewReplacer("~1", "/", "~0", "~").Replace(tok)
		m, ok := v.(map[string]any)
		if !ok {
			return nil, false
		}
		if v, ok = m[tok]; !ok {
			return nil, false
		}
	}
	return v, true
}

// refs lists every $ref of v.
func refs(v any, out *[]string) {
	switch n := v.(type) {
	case map[string]any:
		for k, c := range n {
			if s, ok := c.(string); ok && k == "$ref" {
				*out = append(*out, s)
			}
			refs(c, out)
		}
	case []any:
		for _, c := range n {
			refs(c, out)
		}
	}
}

// The bundle is self-contained: every reference points inside it.
func TestDocumentReferencesResolve(t *testing.T) {
	doc := decode(t, spec.Document())
	assert.Equal(t, "3.1.0", doc["openapi"])
	var all []string
	refs(doc, &all)
	require.NotEmpty(t, all)
	for _, r := range all {
		ptr, ok := strings.CutPrefix(r, "#")
		require.True(t, ok, "external reference %q", r)
		_, found := pointer(doc, ptr)
		assert.True(t, found, "reference %q does not resolve", r)
	}
}

// Every component is a JSON Schema 2020-12 that compiles, and every schema
// file is one (each standing alone, referring to the others by file name).
func TestSchemasCompile(t *testing.T) {
	doc := decode(t, spec.Document())
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	docv, err := jsonschema.UnmarshalJSON(bytes.NewReader(spec.Document()))
	require.NoError(t, err)
	require.NoError(t, c.AddResource("mem://openapi.json", docv))
	schemas := doc["components"].(map[string]any)["schemas"].(map[string]any)
	for name := range schemas {
		_, err := c.Compile("mem://openapi.json#/components/schemas/" + name)
		assert.NoError(t, err, name)
	}

	files := spec.Schemas()
	names, err := fs.Glob(files, "*.schema.json")
	require.NoError(t, err)
	assert.Len(t, names, len(schemas), "one schema file per component")
	sc := jsonschema.NewCompiler()
	for _, n := range names {
		raw, err := fs.ReadFile(files, n)
		require.NoError(t, err)
		v, err := jsonschema.UnmarshalJSON(bytes.NewReader(raw))
		require.NoError(t, err, n)
		require.Equal(t, spec.SchemaBaseURI+n, v.(map[string]any)["$id"], n)
		require.NoError(t, sc.AddResource(spec.SchemaBaseURI+n, v))
	}
	for _, n := range names {
		_, err := sc.Compile(spec.SchemaBaseURI + n)
		assert.NoError(t, err, n)
	}
}

// The document has one operation per route of the bridge, and the
// additions are marked.
func TestOperations(t *testing.T) {
	doc := decode(t, spec.Document())
	var ids []string
	ext := map[string]bool{}
	for _, item := range doc["paths"].(map[string]any) {
		for _, op := range item.(map[string]any) {
			m := op.(map[string]any)
			id := m["operationId"].(string)
			ids = append(ids, id)
			ext[id] = m[spec.ExtensionKey] == true
		}
	}
	sort.Strings(ids)
	want := []string{spec.OpCancelTask, spec.OpCreateTask, spec.OpGetTask, spec.OpHealth, spec.OpListTasks,
		spec.OpOpenAPI, spec.OpPollEvents, spec.OpReady, spec.OpStreamEvents, spec.OpStreamTicket, spec.OpSubmitAction, spec.OpWebSocket}
	assert.Equal(t, want, ids)
	for _, id := range ids {
		added := id == spec.OpGetTask || id == spec.OpListTasks || id == spec.OpOpenAPI || id == spec.OpStreamTicket
		assert.Equal(t, added, ext[id], "%s marked as an extension", id)
	}
}

func TestBuild(t *testing.T) {
	raw, err := spec.Build([]spec.Route{
		{OperationID: spec.OpGetTask, Method: "GET", Path: "/p/:projectId/tasks/:taskId"},
		{OperationID: spec.OpCreateTask, Method: "POST", Path: "/p/:projectId/tasks"},
		{OperationID: spec.OpListTasks, Method: "GET", Path: "/p/:projectId/tasks"},
		{OperationID: spec.OpHealth, Method: "GET", Path: "/live/:probe?"},
	})
	require.NoError(t, err)
	doc := decode(t, raw)
	paths := doc["paths"].(map[string]any)
	assert.Len(t, paths, 3)
	get := paths["/p/{projectId}/tasks/{taskId}"].(map[string]any)["get"].(map[string]any)
	params := get["parameters"].([]any)
	require.Len(t, params, 2, "taskId and the host's projectId")
	assert.Equal(t, "projectId", params[1].(map[string]any)["name"])
	item := paths["/p/{projectId}/tasks"].(map[string]any)
	assert.Contains(t, item, "get")
	assert.Contains(t, item, "post")
	assert.Contains(t, paths, "/live/{probe}")
	assert.Contains(t, doc["components"].(map[string]any)["schemas"], "TaskSnapshot", "components stay")

	_, err = spec.Build([]spec.Route{{OperationID: "nope", Method: "GET", Path: "/"}})
	assert.Error(t, err)
}

package conformance

import (
	"bytes"
	"errors"
	"fmt"
	"mime"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

// Document validates HTTP responses against an OpenAPI 3.1 document, for
// example the one a bridge serves of the routes it mounted. It is safe for
// concurrent use.
type Document struct {
	url      string
	doc      map[string]any
	ops      []operation
	compiler *jsonschema.Compiler

	mu      sync.Mutex
	schemas map[string]*jsonschema.Schema // by JSON pointer
}

// operation is one method of one path template.
type operation struct {
	method   string   // upper case
	template string   // as in the document
	segments []string // of the template; "{...}" matches any segment
	literals int      // how many segments are fixed
}

var documents struct {
	mu sync.Mutex
	n  int
}

// NewDocument parses an OpenAPI document (JSON).
func NewDocument(raw []byte) (*Document, error) {
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(raw))
	if err != nil {
		return nil, fmt.Errorf("conformance: OpenAPI document: %w", err)
	}
	doc, ok := v.(map[string]any)
	if !ok {
		return nil, errors.New("conformance: OpenAPI document is not an object")
	}
	documents.mu.Lock()
	documents.n++
	d := &Document{url: fmt.Sprintf("mem://openapi-%d.json", documents.n), doc: doc, schemas: map[string]*jsonschema.Schema{}}
	documents.mu.Unlock()
	d.compiler = jsonschema.NewCompiler()
	d.compiler.DefaultDraft(jsonschema.Draft2020)
	d.compiler.AssertFormat()
	if err := d.compiler.AddResource(d.url, doc); err != nil {
		return nil, err
	}
	paths, _ := doc["paths"].(map[string]any)
	for template, item := range paths {
		methods, _ := item.(map[string]any)
		for method := range methods {
			op := operation{method: strings.ToUpper(method), template: template, segments: strings.Split(template, "/")}
			for _, s := range op.segments {
				if !strings.HasPrefix(s, "{") {
					op.literals++
				}
			}
			d.ops = append(d.ops, op)
		}
	}
	// Most fixed segments first: "/tasks/ws" wins over "/tasks/{taskId}".
	sort.Slice(d.ops, func(i, j int) bool { return d.ops[i].literals > d.ops[j].literals })
	return d, nil
}

// Operations lists the document's operations as "METHOD template".
func (d *Document) Operations() []string {
	out := make([]string, len(d.ops))
	for i, op := range d.ops {
		out[i] = op.method + " " + op.template
	}
	sort.Strings(out)
	return out
}

// Match returns the path template of the operation that serves method and
// path (a request path without its query), or false.
func (d *Document) Match(method, path string) (string, bool) {
	op, ok := d.match(method, path)
	return op.template, ok
}

func (d *Document) match(method, path string) (operation, bool) {
	segs := strings.Split(path, "/")
	for _, op := range d.ops {
		if op.method != method || len(op.segments) != len(segs) {
			continue
		}
		ok := true
		for i, s := range op.segments {
			if strings.HasPrefix(s, "{") {
				ok = segs[i] != ""
			} else {
				ok = s == segs[i]
			}
			if !ok {
				break
			}
		}
		if ok {
			return op, true
		}
	}
	return operation{}, false
}

// ValidateResponse checks a response to method and path: the operation must
// document its status (exactly, as 4XX/5XX, or as default) and its media
// type, and a JSON body must validate against the documented schema; a
// response documented without content must have no body.
func (d *Document) ValidateResponse(method, path string, status int, contentType string, body []byte) error {
	op, ok := d.match(method, path)
	if !ok {
		return fmt.Errorf("%s %s: no operation in the document", method, path)
	}
	ptr := "/paths/" + escape(op.template) + "/" + strings.ToLower(method) + "/responses"
	responses, _ := d.at(ptr).(map[string]any)
	code := strconv.Itoa(status)
	key := ""
	for _, k := range []string{code, code[:1] + "XX", "default"} {
		if _, ok := responses[k]; ok {
			key = k
			break
		}
	}
	if key == "" {
		return fmt.Errorf("%s %s: status %d is not documented", method, op.template, status)
	}
	ptr += "/" + escape(key)
	resp, _ := d.at(ptr).(map[string]any)
	if ref, ok := resp["$ref"].(string); ok {
		ptr = strings.TrimPrefix(ref, "#")
		resp, _ = d.at(ptr).(map[string]any)
	}
	content, _ := resp["content"].(map[string]any)
	if len(content) == 0 {
		if len(bytes.TrimSpace(body)) > 0 {
			return fmt.Errorf("%s %s %d: documented without a body, got %q", method, op.template, status, truncate(body))
		}
		return nil
	}
	mt, _, err := mime.ParseMediaType(contentType)
	if err != nil {
		return fmt.Errorf("%s %s %d: content type %q: %w", method, op.template, status, contentType, err)
	}
	if _, ok := content[mt]; !ok {
		return fmt.Errorf("%s %s %d: content type %s is not documented", method, op.template, status, mt)
	}
	if mt != "application/json" {
		return nil // streams: their frames are checked one by one (CheckFrame)
	}
	sch, err := d.schema(ptr + "/content/" + escape(mt) + "/schema")
	if err != nil {
		return err
	}
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("%s %s %d: body is not JSON: %w", method, op.template, status, err)
	}
	if err := sch.Validate(v); err != nil {
		return fmt.Errorf("%s %s %d: %w", method, op.template, status, err)
	}
	return nil
}

// schema compiles (once) the schema at a JSON pointer of the document.
func (d *Document) schema(ptr string) (*jsonschema.Schema, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if s, ok := d.schemas[ptr]; ok {
		return s, nil
	}
	s, err := d.compiler.Compile(d.url + "#" + (&url.URL{Fragment: ptr}).EscapedFragment())
	if err != nil {
		return nil, fmt.Errorf("conformance: compile %s: %w", ptr, err)
	}
	d.schemas[ptr] = s
	return s, nil
}

// at resolves a JSON pointer in the document.
func (d *Document) at(ptr string) any {
	var v any = d.doc
	for _, tok := range strings.Split(strings.TrimPrefix(ptr, "/"), "/") {
		tok = strings.NewReplacer("~1", "/", "~0", "~").Replace(tok)
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = m[tok]
	}
	return v
}

// escape escapes one JSON pointer token.
func escape(tok string) string {
	return strings.NewReplacer("~", "~0", "/", "~1").Replace(tok)
}

package conformance

import (
	"bytes"
	"fmt"
	"sync"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/taskbridge/taskbridge-fiber/spec"
)

// ourDocURL is where the project's bundled document is registered with the
// schema compiler.
const ourDocURL = "https://github.com/taskbridge/taskbridge-fiber/spec/openapi.json"

var ours struct {
	once     sync.Once
	compiler *jsonschema.Compiler
	err      error
	mu       sync.Mutex
	schemas  map[Schema]*jsonschema.Schema
}

// ourSchema compiles (once) the project's component s.
func ourSchema(s Schema) (*jsonschema.Schema, error) {
	ours.once.Do(func() {
		doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(spec.Document()))
		if err != nil {
			ours.err = fmt.Errorf("conformance: spec.Document: %w", err)
			return
		}
		c := jsonschema.NewCompiler()
		c.DefaultDraft(jsonschema.Draft2020)
		c.AssertFormat()
		if err := c.AddResource(ourDocURL, doc); err != nil {
			ours.err = err
			return
		}
		ours.compiler = c
		ours.schemas = map[Schema]*jsonschema.Schema{}
	})
	if ours.err != nil {
		return nil, ours.err
	}
	ours.mu.Lock()
	defer ours.mu.Unlock()
	if sch, ok := ours.schemas[s]; ok {
		return sch, nil
	}
	sch, err := ours.compiler.Compile(ourDocURL + "#/components/schemas/" + string(s))
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", errUnknownSchema, s, err)
	}
	ours.schemas[s] = sch
	return sch, nil
}

// Package strictjson decodes client JSON the way the protocol's schemas
// read it, with a decoder built for it (github.com/go-json-experiment/json,
// the encoding/json/v2 line) instead of checks by hand: object member names
// must match a struct field's name exactly (no case folding: "TaskID" is not
// "taskId"), appear once (at any depth, also inside free-form objects such
// as a task's input), and be known; strings must be valid UTF-8; the input
// must be exactly one JSON value. A proxy or WAF that inspects the exact key
// therefore sees what the bridge sees.
//
// Errors are *Error values that say what was wrong and where in words a
// client can act on, never Go type names.
package strictjson

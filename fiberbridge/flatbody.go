package fiberbridge

import (
	"encoding/json"
	"unicode/utf8"

	"github.com/taskbridge/taskbridge-fiber/contracts"
)

// The create and action bodies are flat objects: a few identifier strings
// and one or two JSON objects. scanFlatObject reads the bodies clients send
// in practice in one pass, canonicalising the objects as it meets them
// (contracts.StrictCanonicalValue), where the strict decoder
// (decodeJSONObject) and the canonicaliser would each walk the body. It
// takes a subset of what the strict decoder accepts and gives up on
// anything else: then the route parses the body the full way, which
// answers exactly as before (errors included). FuzzFlatBodies holds the
// two ways to the same result.

// maxFlatStrings and maxFlatObjects bound a flat object's members.
const (
	maxFlatStrings = 3
	maxFlatObjects = 2
)

// flatFields are the members scanFlatObject read, in the order of the names
// it was given; absent strings are "", absent or null objects nil.
type flatFields struct {
	strs [maxFlatStrings]string
	objs [maxFlatObjects]json.RawMessage
}

// scanFlatObject reads body into f: a JSON object (JSON whitespace around
// it) whose members are the strings named in strNames and the objects named
// in objNames, each at most once, names spelled exactly. Strings must be
// valid UTF-8 without escapes; objects may be null. false means the body is
// not of that form (or uses one scanFlatObject does not take); f is then
// unspecified.
func scanFlatObject(body []byte, strNames []string, objNames []string, f *flatFields) bool {
	var seen uint
	i := skipJSONSpace(body, 0)
	if i >= len(body) || body[i] != '{' {
		return false
	}
	i = skipJSONSpace(body, i+1)
	if i < len(body) && body[i] == '}' {
		return skipJSONSpace(body, i+1) == len(body)
	}
	for {
		name, next, ok := plainString(body, i)
		if !ok {
			return false
		}
		i = skipJSONSpace(body, next)
		if i >= len(body) || body[i] != ':' {
			return false
		}
		i = skipJSONSpace(body, i+1)
		member := -1
		for k, n := range strNames {
			if string(name) == n {
				member = k
			}
		}
		switch {
		case member >= 0:
			s, next, ok := plainString(body, i)
			if !ok {
				return false
			}
			f.strs[member] = string(s)
			i = next
		default:
			for k, n := range objNames {
				if string(name) == n {
					member = len(strNames) + k
				}
			}
			if member < 0 {
				return false // unknown member: the strict decoder names it
			}
			v, n, ok := contracts.StrictCanonicalValue(body[i:])
			switch {
			case !ok:
				return false
			case string(v) == "null":
				v = nil
			case v[0] != '{':
				return false // not an object: the full way says which field
			}
			f.objs[member-len(strNames)] = v
			i += n
		}
		if seen&(1<<member) != 0 {
			return false // a duplicate name
		}
		seen |= 1 << member
		i = skipJSONSpace(body, i)
		if i >= len(body) {
			return false
		}
		switch body[i] {
		case ',':
			i = skipJSONSpace(body, i+1)
		case '}':
			return skipJSONSpace(body, i+1) == len(body)
		default:
			return false
		}
	}
}

// plainString returns the contents of the JSON string at body[i] when it
// holds no escape and no control character and is valid UTF-8 (so its
// bytes are its value), and the index after it.
func plainString(body []byte, i int) ([]byte, int, bool) {
	if i >= len(body) || body[i] != '"' {
		return nil, 0, false
	}
	start := i + 1
	for j := start; j < len(body); j++ {
		switch c := body[j]; {
		case c == '"':
			s := body[start:j]
			return s, j + 1, utf8.Valid(s)
		case c == '\\' || c < 0x20:
			return nil, 0, false
		}
	}
	return nil, 0, false
}

// skipJSONSpace returns the index of the first byte at or after i that is
// not JSON whitespace.
func skipJSONSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// orEmptyObject is a canonical object member, {} when absent or null (what
// objectField makes of those).
func orEmptyObject(v json.RawMessage) json.RawMessage {
	if v == nil {
		return json.RawMessage("{}")
	}
	return v
}

var (
	createStrings = []string{"clientRequestId", "taskType"}
	createObjects = []string{"input", "metadata"}
	actionStrings = []string{"clientActionId", "suspendId", "actionType"}
	actionObjects = []string{"payload", "metadata"}
)

// parseCreateFlat is parseCreateJSON for bodies scanFlatObject takes; ok
// false leaves the body to parseCreateJSON's full way.
func parseCreateFlat(body []byte) (cmd contracts.CreateTaskCommand, ok bool, err error) {
	var f flatFields
	if !scanFlatObject(body, createStrings, createObjects, &f) {
		return contracts.CreateTaskCommand{}, false, nil
	}
	if err := checkField("clientRequestId", f.strs[0]); err != nil {
		return contracts.CreateTaskCommand{}, true, err
	}
	if err := checkField("taskType", f.strs[1]); err != nil {
		return contracts.CreateTaskCommand{}, true, err
	}
	return contracts.CreateTaskCommand{
		ClientRequestID: f.strs[0], TaskType: f.strs[1],
		Input: orEmptyObject(f.objs[0]), Metadata: orEmptyObject(f.objs[1]),
	}, true, nil
}

// parseActionFlat is parseAction for bodies scanFlatObject takes; ok false
// leaves the body to parseAction's full way.
func parseActionFlat(body []byte) (cmd contracts.SubmitActionCommand, ok bool, err error) {
	var f flatFields
	if !scanFlatObject(body, actionStrings, actionObjects, &f) {
		return contracts.SubmitActionCommand{}, false, nil
	}
	for i, name := range actionStrings {
		if err := checkField(name, f.strs[i]); err != nil {
			return contracts.SubmitActionCommand{}, true, err
		}
	}
	return contracts.SubmitActionCommand{
		ClientActionID: f.strs[0], SuspendID: f.strs[1], ActionType: f.strs[2],
		Payload: orEmptyObject(f.objs[0]), Metadata: orEmptyObject(f.objs[1]),
	}, true, nil
}

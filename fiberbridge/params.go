package fiberbridge

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/gofiber/fiber/v2"

	"github.com/taskbridge/taskbridge-fiber/contracts"
	bridgeerr "github.com/taskbridge/taskbridge-fiber/errors"
	"github.com/taskbridge/taskbridge-fiber/internal/strictjson"
)

// This file holds the request parsers. They are pure functions of bytes and
// strings (no fiber.Ctx), so they are table-tested and fuzzed directly.

// invalidRequest is a 400 INVALID_REQUEST with details.
func invalidRequest(message string, details map[string]any) *bridgeerr.Error {
	return bridgeerr.New(bridgeerr.CodeInvalidRequest, message).WithDetails(details)
}

// parseTaskID checks a task id taken from the path: non-empty, at most
// contracts.MaxTaskIDLen bytes, valid UTF-8 without control characters. It
// returns a copy, safe to keep after the request.
func parseTaskID(raw string) (string, error) {
	switch {
	case raw == "":
		return "", invalidRequest("taskId is required", map[string]any{"parameter": TaskIDParam})
	case len(raw) > contracts.MaxTaskIDLen:
		return "", invalidRequest(fmt.Sprintf("taskId is longer than %d bytes", contracts.MaxTaskIDLen),
			map[string]any{"parameter": TaskIDParam, "maxBytes": contracts.MaxTaskIDLen})
	case !printable(raw):
		return "", invalidRequest("taskId contains invalid characters", map[string]any{"parameter": TaskIDParam})
	}
	return strings.Clone(raw), nil
}

// printable reports whether s is valid UTF-8 without ASCII control
// characters.
func printable(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c == 0x7f {
			return false
		}
	}
	return utf8.ValidString(s)
}

// parseCursor parses a replay cursor from parameter or header name; the
// empty string is the zero cursor. Malformed text is 400 INVALID_REQUEST.
func parseCursor(name, raw string) (contracts.EventID, error) {
	id, err := contracts.ParseCursor(raw)
	if err != nil {
		return contracts.EventID{}, bridgeerr.Wrap(bridgeerr.CodeInvalidRequest, err, "malformed "+name).
			WithDetails(map[string]any{"parameter": name, "reason": "not an event id"})
	}
	return id, nil
}

// parseIntParam parses an integer query parameter in [lo, hi]; the empty
// string is def. Anything else is 422 REQUEST_VALIDATION_ERROR naming the
// parameter.
func parseIntParam(name, raw string, def, lo, hi int) (int, error) {
	if raw == "" {
		return def, nil
	}
	n, err := strconv.Atoi(raw)
	if err != nil || n < lo || n > hi {
		return 0, bridgeerr.New(bridgeerr.CodeRequestValidation,
			fmt.Sprintf("%s must be an integer from %d to %d", name, lo, hi)).
			WithDetails(map[string]any{"parameter": name, "minimum": lo, "maximum": hi})
	}
	return n, nil
}

// mediaType returns the lowercase media type of a Content-Type header
// without parameters, "" when absent, and "invalid" when unparsable.
func mediaType(header string) string {
	if strings.TrimSpace(header) == "" {
		return ""
	}
	if isPlainJSON(header) {
		return fiber.MIMEApplicationJSON // what mime.ParseMediaType answers, without its allocations
	}
	mt, _, err := mime.ParseMediaType(header)
	if err != nil {
		return "invalid"
	}
	return mt
}

// isPlainJSON reports whether a Content-Type header is application/json
// alone or with the UTF-8 charset, in any letter case: what clients send,
// and what mime.ParseMediaType would parse to application/json.
func isPlainJSON(header string) bool {
	for _, v := range [...]string{
		fiber.MIMEApplicationJSON, "application/json; charset=utf-8", "application/json;charset=utf-8",
	} {
		if strings.EqualFold(header, v) {
			return true
		}
	}
	return false
}

// isJSONType reports whether a media type is JSON (application/json or a
// +json suffix).
func isJSONType(mt string) bool {
	return mt == fiber.MIMEApplicationJSON || (strings.HasPrefix(mt, "application/") && strings.HasSuffix(mt, "+json"))
}

// unsupportedMediaType is the 415 answer to a body of the wrong type.
func unsupportedMediaType(mt string, accepted ...string) *bridgeerr.Error {
	if mt == "" {
		mt = "none"
	}
	return bridgeerr.New(bridgeerr.CodeInvalidRequest, "unsupported content type").
		WithDetails(map[string]any{"contentType": mt, "accepted": accepted}).
		WithStatus(fiber.StatusUnsupportedMediaType)
}

// bodyTooLarge is the 413 answer to a body over limit bytes.
func bodyTooLarge(limit int64) *bridgeerr.Error {
	return bridgeerr.New(bridgeerr.CodeInvalidRequest, "request body too large").
		WithDetails(map[string]any{"maxBytes": limit}).
		WithStatus(fiber.StatusRequestEntityTooLarge)
}

// decodeJSONObject strictly decodes body, which must be exactly one JSON
// object of valid UTF-8, into v (a pointer to a struct) with
// internal/strictjson: unknown fields, names spelled differently from the
// schema (another letter case), duplicate names at any depth, wrong types
// and trailing data are 400 INVALID_REQUEST naming the field. An empty
// (all-space) body is an error when required, else a no-op.
func decodeJSONObject(body []byte, v any, required bool) error {
	trimmed := bytes.TrimSpace(body)
	if len(trimmed) == 0 {
		if required {
			return invalidRequest("request body is required", map[string]any{"reason": "empty body"})
		}
		return nil
	}
	if trimmed[0] != '{' {
		if !utf8.Valid(trimmed) {
			return invalidRequest("request body is not valid UTF-8", map[string]any{"reason": "invalid UTF-8"})
		}
		return invalidRequest("request body must be a JSON object", map[string]any{"reason": "not an object"})
	}
	if err := strictjson.Unmarshal(trimmed, v); err != nil {
		return jsonError(err)
	}
	return nil
}

// jsonError maps a strictjson error to INVALID_REQUEST with details a
// client can act on (never Go type names or internal text).
func jsonError(err error) *bridgeerr.Error {
	var se *strictjson.Error
	if !errors.As(err, &se) {
		return invalidRequest("malformed JSON", map[string]any{"reason": "invalid value"})
	}
	switch se.Reason {
	case strictjson.ReasonWrongType:
		return invalidRequest(fmt.Sprintf("%s must be %s", fieldOrBody(se.Field), se.Expected),
			map[string]any{"field": se.Field, "expected": se.Expected})
	case strictjson.ReasonUnknownField:
		return invalidRequest("unknown field "+strconv.Quote(se.Field), map[string]any{"field": se.Field, "reason": "unknown field"})
	case strictjson.ReasonDuplicateField:
		return invalidRequest("duplicate field "+strconv.Quote(se.Field), map[string]any{"field": se.Field, "reason": "duplicate field"})
	case strictjson.ReasonInvalidUTF8:
		return invalidRequest("request body is not valid UTF-8", map[string]any{"reason": "invalid UTF-8"})
	case strictjson.ReasonSyntax:
		return invalidRequest("malformed JSON", map[string]any{"reason": "syntax error", "offset": se.Offset})
	case strictjson.ReasonUnexpectedEnd:
		return invalidRequest("malformed JSON", map[string]any{"reason": "unexpected end of input"})
	case strictjson.ReasonTrailingData:
		return invalidRequest("malformed JSON", map[string]any{"reason": "trailing data after the JSON object"})
	}
	return invalidRequest("malformed JSON", map[string]any{"reason": "invalid value"})
}

func fieldOrBody(field string) string {
	if field == "" {
		return "the body"
	}
	return field
}

// checkField checks a client identifier: at most MaxFieldBytes, printable.
// Emptiness is left to the services (they name the missing field).
func checkField(name, value string) error {
	switch {
	case len(value) > MaxFieldBytes:
		return invalidRequest(fmt.Sprintf("%s is longer than %d bytes", name, MaxFieldBytes),
			map[string]any{"field": name, "maxBytes": MaxFieldBytes})
	case !printable(value):
		return invalidRequest(name+" contains invalid characters", map[string]any{"field": name})
	}
	return nil
}

// objectField canonicalises an optional JSON object field (absent and null
// are {}); anything but an object is 400 naming the field.
func objectField(name string, raw json.RawMessage) (json.RawMessage, error) {
	obj, err := contracts.CanonicalObject(raw)
	if err != nil {
		return nil, bridgeerr.Wrap(bridgeerr.CodeInvalidRequest, err, name+" must be a JSON object").
			WithDetails(map[string]any{"field": name, "expected": "an object"})
	}
	return obj, nil
}

// createBody is the JSON body of a create request.
type createBody struct {
	ClientRequestID string          `json:"clientRequestId"`
	TaskType        string          `json:"taskType"`
	Input           json.RawMessage `json:"input"`
	Metadata        json.RawMessage `json:"metadata"`
}

// parseCreateJSON parses a JSON create body into a command (without Auth):
// in one pass when parseCreateFlat takes it, else parseCreateFull.
func parseCreateJSON(body []byte) (contracts.CreateTaskCommand, error) {
	if cmd, ok, err := parseCreateFlat(body); ok {
		return cmd, err
	}
	return parseCreateFull(body)
}

// parseCreateFull parses a create body with the strict decoder.
func parseCreateFull(body []byte) (contracts.CreateTaskCommand, error) {
	var in createBody
	if err := decodeJSONObject(body, &in, true); err != nil {
		return contracts.CreateTaskCommand{}, err
	}
	return createCommand(in.ClientRequestID, in.TaskType, in.Input, in.Metadata)
}

func createCommand(clientRequestID, taskType string, input, metadata json.RawMessage) (contracts.CreateTaskCommand, error) {
	if err := checkField("clientRequestId", clientRequestID); err != nil {
		return contracts.CreateTaskCommand{}, err
	}
	if err := checkField("taskType", taskType); err != nil {
		return contracts.CreateTaskCommand{}, err
	}
	in, err := objectField("input", input)
	if err != nil {
		return contracts.CreateTaskCommand{}, err
	}
	md, err := objectField("metadata", metadata)
	if err != nil {
		return contracts.CreateTaskCommand{}, err
	}
	return contracts.CreateTaskCommand{
		ClientRequestID: clientRequestID, TaskType: taskType, Input: in, Metadata: md,
	}, nil
}

// cancelBody is the optional JSON body of a cancel request.
type cancelBody struct {
	Reason *string `json:"reason"`
}

// maxReasonBytes bounds a cancellation reason.
const maxReasonBytes = 1024

// parseCancel parses an optional cancel body and returns the reason.
func parseCancel(body []byte) (string, error) {
	var in cancelBody
	if err := decodeJSONObject(body, &in, false); err != nil {
		return "", err
	}
	if in.Reason == nil {
		return "", nil
	}
	switch r := *in.Reason; {
	case len(r) > maxReasonBytes:
		return "", invalidRequest(fmt.Sprintf("reason is longer than %d bytes", maxReasonBytes),
			map[string]any{"field": "reason", "maxBytes": maxReasonBytes})
	case !utf8.ValidString(r):
		return "", invalidRequest("reason contains invalid characters", map[string]any{"field": "reason"})
	}
	return *in.Reason, nil
}

// actionBody is the JSON body of an action request (the protocol's
// TaskClientAction, which allows no other fields).
type actionBody struct {
	ClientActionID string          `json:"clientActionId"`
	SuspendID      string          `json:"suspendId"`
	ActionType     string          `json:"actionType"`
	Payload        json.RawMessage `json:"payload"`
	Metadata       json.RawMessage `json:"metadata"`
}

// parseAction parses an action body into a command (without Auth and
// TaskID): in one pass when parseActionFlat takes it, else parseActionFull.
func parseAction(body []byte) (contracts.SubmitActionCommand, error) {
	if cmd, ok, err := parseActionFlat(body); ok {
		return cmd, err
	}
	return parseActionFull(body)
}

// parseActionFull parses an action body with the strict decoder.
func parseActionFull(body []byte) (contracts.SubmitActionCommand, error) {
	var in actionBody
	if err := decodeJSONObject(body, &in, true); err != nil {
		return contracts.SubmitActionCommand{}, err
	}
	for _, f := range [...]struct{ name, value string }{
		{"clientActionId", in.ClientActionID}, {"suspendId", in.SuspendID}, {"actionType", in.ActionType},
	} {
		if err := checkField(f.name, f.value); err != nil {
			return contracts.SubmitActionCommand{}, err
		}
	}
	payload, err := objectField("payload", in.Payload)
	if err != nil {
		return contracts.SubmitActionCommand{}, err
	}
	md, err := objectField("metadata", in.Metadata)
	if err != nil {
		return contracts.SubmitActionCommand{}, err
	}
	return contracts.SubmitActionCommand{
		ClientActionID: in.ClientActionID, SuspendID: in.SuspendID, ActionType: in.ActionType,
		Payload: payload, Metadata: md,
	}, nil
}

// cleanFilename reduces an uploaded file's name to its base name (both /
// and \ separate directories) and rejects names that are empty, ".", "..",
// longer than 255 bytes, or contain NUL, control characters or invalid
// UTF-8.
func cleanFilename(name string) (string, error) {
	if i := strings.LastIndexAny(name, `/\`); i >= 0 {
		name = name[i+1:]
	}
	reject := func(reason string) (string, error) {
		return "", bridgeerr.New(bridgeerr.CodeUploadValidation, "invalid file name").
			WithDetails(map[string]any{"reason": reason})
	}
	switch {
	case name == "" || name == "." || name == "..":
		return reject("empty file name")
	case len(name) > 255:
		return reject("file name is longer than 255 bytes")
	case !printable(name):
		return reject("file name contains NUL, control characters or invalid UTF-8")
	}
	return name, nil
}

package strictjson

import (
	"errors"
	"fmt"
	"io"
	"reflect"
	"strings"

	json "github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"
)

// Reasons an input is refused (Error.Reason).
const (
	ReasonUnknownField   = "unknown field"
	ReasonDuplicateField = "duplicate field"
	ReasonWrongType      = "wrong type"
	ReasonInvalidUTF8    = "invalid UTF-8"
	ReasonSyntax         = "syntax error"
	ReasonTrailingData   = "trailing data"
	ReasonUnexpectedEnd  = "unexpected end of input"
	ReasonInvalidValue   = "invalid value"
)

// Error is why Unmarshal refused its input.
type Error struct {
	// Reason is one of the Reason constants.
	Reason string
	// Field is the member the error is about as a dotted path
	// ("clientRequestId", "input.x"); "" for the value as a whole.
	Field string
	// Expected names the JSON type a wrong-type member must have ("a
	// string", "an object", ...); "" for other reasons.
	Expected string
	// Offset is the byte offset at or after which the error occurred.
	Offset int64
}

// Error implements error.
func (e *Error) Error() string {
	switch {
	case e.Reason == ReasonWrongType && e.Field != "":
		return fmt.Sprintf("%s must be %s", e.Field, e.Expected)
	case e.Reason == ReasonWrongType:
		return "the value must be " + e.Expected
	case e.Field != "":
		return fmt.Sprintf("%s %q", e.Reason, e.Field)
	}
	return e.Reason
}

// options are the decoder's settings; the defaults of the v2 line already
// match names case-sensitively, refuse duplicate names and invalid UTF-8;
// they are spelled out so that a change of defaults cannot loosen them.
var options = json.JoinOptions(
	json.RejectUnknownMembers(true),
	json.MatchCaseInsensitiveNames(false),
	jsontext.AllowDuplicateNames(false),
	jsontext.AllowInvalidUTF8(false),
)

// Unmarshal decodes data, which must be exactly one JSON value, into v (a
// pointer). Fields of type encoding/json.RawMessage receive the raw member;
// duplicate names inside it are refused as well. The error is an *Error.
func Unmarshal(data []byte, v any) error {
	err := json.Unmarshal(data, v, options)
	if err == nil {
		return nil
	}
	return describe(err)
}

// describe turns a decoder error into an *Error.
func describe(err error) *Error {
	var syn *jsontext.SyntacticError
	var sem *json.SemanticError
	switch {
	case errors.As(err, &syn):
		e := &Error{Field: field(syn.JSONPointer), Offset: syn.ByteOffset}
		switch {
		case errors.Is(syn.Err, jsontext.ErrDuplicateName):
			e.Reason = ReasonDuplicateField
		case errors.Is(syn.Err, io.ErrUnexpectedEOF):
			e.Reason, e.Field = ReasonUnexpectedEnd, ""
		case strings.Contains(syn.Err.Error(), "invalid UTF-8"):
			e.Reason = ReasonInvalidUTF8
		case strings.Contains(syn.Err.Error(), "after top-level value"):
			e.Reason, e.Field = ReasonTrailingData, ""
		default:
			e.Reason, e.Field = ReasonSyntax, ""
		}
		return e
	case errors.As(err, &sem):
		e := &Error{Field: field(sem.JSONPointer), Offset: sem.ByteOffset}
		switch {
		case errors.Is(sem.Err, json.ErrUnknownName):
			e.Reason = ReasonUnknownField
		case sem.Err == nil && sem.GoType != nil:
			e.Reason, e.Expected = ReasonWrongType, kind(sem.GoType)
		default:
			// A value the target type refused (for example a
			// json.Unmarshaler's own error).
			e.Reason = ReasonInvalidValue
		}
		return e
	case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		return &Error{Reason: ReasonUnexpectedEnd}
	}
	return &Error{Reason: ReasonInvalidValue}
}

// field turns a JSON pointer ("/input/a~1b") into a dotted path
// ("input.a/b").
func field(p jsontext.Pointer) string {
	var parts []string
	for tok := range p.Tokens() {
		parts = append(parts, tok)
	}
	return strings.Join(parts, ".")
}

// kind names the JSON type a Go type decodes from.
func kind(t reflect.Type) string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "a boolean"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64,
		reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Slice, reflect.Array:
		return "an array"
	case reflect.Map, reflect.Struct:
		return "an object"
	}
	return "a valid value"
}

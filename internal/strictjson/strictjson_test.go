package strictjson_test

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/taskbridge/taskbridge-fiber/internal/strictjson"
)

type body struct {
	ClientRequestID string          `json:"clientRequestId"`
	TaskType        string          `json:"taskType"`
	Input           json.RawMessage `json:"input"`
	Count           *int            `json:"count"`
}

func TestUnmarshal(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, in       string
		reason, field  string
		expected       string
		wantCRID, want string
	}{
		{name: "valid", in: `{"clientRequestId":"a","taskType":"t","input":{"x":1}}`, wantCRID: "a", want: `{"x":1}`},
		{name: "duplicate key", in: `{"clientRequestId":"a","clientRequestId":"b"}`, reason: strictjson.ReasonDuplicateField, field: "clientRequestId"},
		{name: "duplicate inside input", in: `{"input":{"x":1,"x":2}}`, reason: strictjson.ReasonDuplicateField, field: "input.x"},
		{name: "upper case key", in: `{"CLIENTREQUESTID":"a"}`, reason: strictjson.ReasonUnknownField, field: "CLIENTREQUESTID"},
		{name: "other case key", in: `{"TaskType":"a"}`, reason: strictjson.ReasonUnknownField, field: "TaskType"},
		{name: "unknown key", in: `{"x":1}`, reason: strictjson.ReasonUnknownField, field: "x"},
		{name: "wrong type", in: `{"taskType":5}`, reason: strictjson.ReasonWrongType, field: "taskType", expected: "a string"},
		{name: "wrong type number", in: `{"count":"5"}`, reason: strictjson.ReasonWrongType, field: "count", expected: "a number"},
		{name: "not an object", in: `[1]`, reason: strictjson.ReasonWrongType, expected: "an object"},
		{name: "trailing data", in: `{"taskType":"a"} {}`, reason: strictjson.ReasonTrailingData},
		{name: "truncated", in: `{"taskType":"a"`, reason: strictjson.ReasonUnexpectedEnd},
		{name: "invalid utf-8", in: "{\"taskType\":\"\xff\"}", reason: strictjson.ReasonInvalidUTF8, field: "taskType"},
		{name: "syntax", in: `{"taskType":"a",}`, reason: strictjson.ReasonSyntax},
		{name: "escaped pointer", in: `{"input":{"a/b":1,"a/b":1}}`, reason: strictjson.ReasonDuplicateField, field: "input.a/b"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var b body
			err := strictjson.Unmarshal([]byte(tc.in), &b)
			if tc.reason == "" {
				require.NoError(t, err)
				assert.Equal(t, tc.wantCRID, b.ClientRequestID)
				assert.JSONEq(t, tc.want, string(b.Input))
				return
			}
			var se *strictjson.Error
			require.ErrorAs(t, err, &se)
			assert.Equal(t, tc.reason, se.Reason)
			assert.Equal(t, tc.field, se.Field)
			assert.Equal(t, tc.expected, se.Expected)
			assert.NotContains(t, se.Error(), "main.")
			assert.NotContains(t, se.Error(), "strictjson_test")
		})
	}
}

// BenchmarkUnmarshal is the cost of decoding a typical create body.
func BenchmarkUnmarshal(b *testing.B) {
	in := []byte(`{"clientRequestId":"req-123","taskType":"report","input":{"pages":3,"title":"quarterly"},"count":2}`)
	b.ReportAllocs()
	for b.Loop() {
		var v body
		if err := strictjson.Unmarshal(in, &v); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkStdlib is the same body with encoding/json (case-insensitive,
// duplicates allowed), for comparison.
func BenchmarkStdlib(b *testing.B) {
	in := []byte(`{"clientRequestId":"req-123","taskType":"report","input":{"pages":3,"title":"quarterly"},"count":2}`)
	b.ReportAllocs()
	for b.Loop() {
		var v body
		if err := json.Unmarshal(in, &v); err != nil {
			b.Fatal(err)
		}
	}
}

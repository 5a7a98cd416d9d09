package fiberbridge

import (
	"errors"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	bridgeerr "github.com/taskbridge/taskbridge-fiber/errors"
)

// flatSeeds are create and action bodies on both sides of what the one-pass
// reader takes.
var flatSeeds = []string{
	`{"clientRequestId":"r","taskType":"t","input":{"b":1,"a":[2]},"metadata":null}`,
	` {"clientRequestId":"r","taskType":"t"} `, "\t{\n\"taskType\" : \"t\" ,\r\"clientRequestId\":\"r\"}\n", `{}`, ` { } `,
	`{"clientRequestId":"r","taskType":"t","input":{}}`, `{"input":{"x":{"y":[1,{"b":2,"a":1}]}},"clientRequestId":"é","taskType":"日本"}`,
	`{"clientRequestId":"a","clientRequestId":"b","taskType":"t"}`, `{"CLIENTREQUESTID":"a","taskType":"t"}`,
	`{"clientRequestId":"a","TaskType":"t"}`, `{"clientRequestId":"a","taskType":"t","input":{"s":1,"s":2}}`,
	`{"clientRequestId":"a","taskType":"t","priority":1}`, `{"clientRequestId":1}`, `{"taskType":true}`, `{"input":[]}`,
	`{"metadata":"x"}`, `{"clientRequestId":"a\u0000b"}`, `{"clientRequestId":"a\"b","taskType":"t"}`,
	`{"clientRequestId":null,"taskType":"t"}`, `{"clientRequestId":"` + strings.Repeat("x", MaxFieldBytes+1) + `","taskType":"t"}`,
	"{\"clientRequestId\":\"a\x01\",\"taskType\":\"t\"}", "{\"clientRequestId\":\"\xff\",\"taskType\":\"t\"}",
	`{"clientRequestId":"a","taskType":"t"} x`, `{"clientRequestId":"a","taskType":"t"}}`, `{"clientRequestId":"a",}`,
	`{"clientRequestId":"a" "taskType":"t"}`, `{"clientRequestId":"a","taskType":"t","input":{"<":">"}}`,
	`{"clientRequestId":"a","taskType":"t","input":{"k":"\u00e9"}}`, `{"clientRequestId":"a","taskType":"t","input":{"k":"a\/b\n"}}`,
	"\v{\"clientRequestId\":\"a\",\"taskType\":\"t\"}", `[]`, `"s"`, `{`, ``, `null`, `{"input":"{}"}`, `{"input":1e5}`,
	`{"clientActionId":"c","suspendId":"s","actionType":"approve","payload":{"z":1,"a":2},"metadata":{}}`,
	`{"clientActionId":"c","suspendId":"s","actionType":"approve"}`, `{"clientActionId":"c","suspendId":"s","actionType":"approve","extra":1}`,
	`{"clientActionId":"1","suspendId":"s","suspendId":"t","actionType":"approve"}`, `{"payload":[1],"clientActionId":"c"}`,
	`{"clientActionId":"c","suspendId":"s","actionType":"approve","payload":null,"metadata":null}`,
}

// sameOutcome asserts that the one-pass reader, when it takes body,
// answers as the strict decoder does (command or error envelope).
func sameOutcome(t *testing.T, body []byte) {
	t.Helper()
	if cmd, ok, err := parseCreateFlat(body); ok {
		full, fullErr := parseCreateFull(body)
		requireSameError(t, body, fullErr, err)
		if err == nil {
			require.Equal(t, full, cmd, "%q", body)
		}
	}
	if cmd, ok, err := parseActionFlat(body); ok {
		full, fullErr := parseActionFull(body)
		requireSameError(t, body, fullErr, err)
		if err == nil {
			require.Equal(t, full, cmd, "%q", body)
		}
	}
}

func requireSameError(t *testing.T, body []byte, want, got error) {
	t.Helper()
	if want == nil || got == nil {
		require.Equal(t, want, got, "%q", body)
		return
	}
	var w, g *bridgeerr.Error
	require.True(t, errors.As(want, &w) && errors.As(got, &g), "%q: %v / %v", body, want, got)
	require.Equal(t, w.Code, g.Code, "%q", body)
	require.Equal(t, w.Message, g.Message, "%q", body)
	require.Equal(t, w.Details, g.Details, "%q", body)
}

func TestFlatBodiesMatchStrictDecoding(t *testing.T) {
	t.Parallel()
	for _, s := range flatSeeds {
		sameOutcome(t, []byte(s))
	}
}

// TestFlatBodiesTaken: the bodies clients send go the one-pass way (or it
// would cost time and save nothing), and the forms it leaves to the strict
// decoder are left.
func TestFlatBodiesTaken(t *testing.T) {
	t.Parallel()
	for _, s := range []string{
		`{"clientRequestId":"r","taskType":"t","input":{"b":1,"a":[2]},"metadata":null}`,
		`{"clientRequestId": "r", "taskType": "t", "input": {"n": 1.5, "s": "a\nb"}}`, `{}`,
		`{"clientRequestId":"a","taskType":"b"}`,
	} {
		_, ok, _ := parseCreateFlat([]byte(s))
		assert.True(t, ok, s)
	}
	_, ok, _ := parseActionFlat([]byte(`{"clientActionId":"c","suspendId":"s","actionType":"approve","payload":{"ok":true}}`))
	assert.True(t, ok)
	for _, s := range []string{
		`{"clientRequestId":"a","clientRequestId":"b"}`, `{"clientRequestId":"a","x":1}`, `{"input":{"s":1,"s":2}}`,
		`{"clientRequestId":"a\"b"}`, `{"input":[]}`, `{"clientRequestId":null}`, `{"a":1} x`, "\v{}",
	} {
		_, ok, _ := parseCreateFlat([]byte(s))
		assert.False(t, ok, s)
	}
}

func FuzzFlatBodies(f *testing.F) {
	for _, s := range flatSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		sameOutcome(t, body)
	})
}

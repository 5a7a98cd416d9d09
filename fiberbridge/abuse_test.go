package fiberbridge_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	bridgeerr "github.com/taskbridge/taskbridge-fiber/errors"
	"github.com/taskbridge/taskbridge-fiber/internal/e2etest"
)

// TestParseErrorsEchoNoRequestBytes sends requests fasthttp cannot parse
// (a malformed request line, a header without a colon, a bad
// Content-Length) carrying a secret Authorization header: the answer is a
// generic 400 INVALID_REQUEST envelope that quotes nothing of the request.
func TestParseErrorsEchoNoRequestBytes(t *testing.T) {
	t.Parallel()
	h := startHardened(t, hopts{})
	const secret = "s3cr3t-token-0123456789"
	for _, tc := range []struct{ name, raw string }{
		{"header without colon", "GET /health HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + secret + "\r\nBroken header line\r\n\r\n"},
		{"bad request line", "GET\x01/health HTTP/1.1 extra\r\nAuthorization: Bearer " + secret + "\r\n\r\n"},
		{"bad content length", "POST /api/v1/tasks HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + secret + "\r\nContent-Length: -5x\r\n\r\n"},
		{"no method", " /health HTTP/1.1\r\nAuthorization: Bearer " + secret + "\r\n\r\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, err := e2etest.RawExchange(h.srv.Addr, []byte(tc.raw), hwait)
			require.NoError(t, err)
			env := e2etest.CheckEnvelope(t, resp, http.StatusBadRequest, bridgeerr.CodeInvalidRequest)
			assert.Equal(t, "invalid request", env.Message)
			assert.NotContains(t, string(resp.Body), secret)
			assert.NotContains(t, string(resp.Body), "Authorization")
			for k, v := range resp.Header {
				assert.NotContains(t, strings.Join(v, ","), secret, "header %s", k)
			}
		})
	}
}

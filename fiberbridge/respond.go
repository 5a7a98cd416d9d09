package fiberbridge

import (
	"encoding/json"
	"unicode/utf8"

	"github.com/gofiber/fiber/v2"

	"github.com/taskbridge/taskbridge-fiber/contracts"
)

// The answers of create, cancel and action are written by hand into a
// buffer on the stack and copied into fasthttp's pooled body buffer: the
// same bytes json.Marshal writes for the contracts types (field order,
// escaping), without reflection, boxing or a heap buffer per request.
// TestResponseEncodersMatchEncodingJSON holds them to json.Marshal.

// respBufSize is the stack buffer of a hand-written answer; a longer one
// (ids near their size limits) spills to the heap.
const respBufSize = 512

// writeCreated answers a create.
func writeCreated(c *fiber.Ctx, status int, res *contracts.TaskCreated) error {
	var buf [respBufSize]byte
	return writeCopy(c, status, appendTaskCreated(buf[:0], res))
}

// writeCancelResult answers a cancel.
func writeCancelResult(c *fiber.Ctx, status int, res *contracts.CancelResult) error {
	var buf [respBufSize]byte
	return writeCopy(c, status, appendCancelResult(buf[:0], res))
}

// writeActionResult answers an action.
func writeActionResult(c *fiber.Ctx, status int, res *contracts.ActionResult) error {
	var buf [respBufSize]byte
	return writeCopy(c, status, appendActionResult(buf[:0], res))
}

// writeCopy answers status with a copy of body (which may live on the
// caller's stack) in fasthttp's pooled body buffer.
func writeCopy(c *fiber.Ctx, status int, body []byte) error {
	c.Status(status)
	c.Response().Header.SetContentType(fiber.MIMEApplicationJSONCharsetUTF8)
	c.Response().SetBody(body)
	return nil
}

func appendTaskCreated(dst []byte, r *contracts.TaskCreated) []byte {
	dst = append(dst, `{"taskId":`...)
	dst = appendMarshalString(dst, r.TaskID)
	dst = append(dst, `,"status":`...)
	dst = appendMarshalString(dst, string(r.Status))
	dst = append(dst, `,"clientRequestId":`...)
	dst = appendMarshalString(dst, r.ClientRequestID)
	if r.Deduplicated {
		return append(dst, `,"deduplicated":true}`...)
	}
	return append(dst, `,"deduplicated":false}`...)
}

func appendCancelResult(dst []byte, r *contracts.CancelResult) []byte {
	dst = append(dst, `{"taskId":`...)
	dst = appendMarshalString(dst, r.TaskID)
	dst = append(dst, `,"status":`...)
	dst = appendMarshalString(dst, string(r.Status))
	return append(dst, '}')
}

func appendActionResult(dst []byte, r *contracts.ActionResult) []byte {
	dst = append(dst, `{"taskId":`...)
	dst = appendMarshalString(dst, r.TaskID)
	dst = append(dst, `,"suspendId":`...)
	dst = appendMarshalString(dst, r.SuspendID)
	dst = append(dst, `,"clientActionId":`...)
	dst = appendMarshalString(dst, r.ClientActionID)
	dst = append(dst, `,"status":`...)
	dst = appendMarshalString(dst, string(r.Status))
	return append(dst, '}')
}

// appendMarshalString appends s as json.Marshal writes it: printable ASCII
// other than ", \, <, > and & as is; anything else (escapes, non-ASCII)
// through json.Marshal itself, so the bytes never differ from it.
func appendMarshalString(dst []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if b := s[i]; b < 0x20 || b >= utf8.RuneSelf || b == '"' || b == '\\' || b == '<' || b == '>' || b == '&' {
			q, _ := json.Marshal(s) // a string always encodes
			return append(dst, q...)
		}
	}
	dst = append(dst, '"')
	dst = append(dst, s...)
	return append(dst, '"')
}

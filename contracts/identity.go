package contracts

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"strconv"
)

// NewID returns a random 128-bit identifier as 32 lowercase hex digits, the
// form of task and suspension ids.
func NewID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails; it crashes the program first
	var text [32]byte
	hex.Encode(text[:], b[:])
	return string(text[:])
}

// ErrNotObject is returned by CanonicalObject for JSON that is not an object.
var ErrNotObject = errors.New("taskbridge: JSON value is not an object")

// CanonicalJSON re-encodes a JSON value with object keys sorted and no
// insignificant whitespace, keeping numbers exactly as written (the bytes
// encoding/json writes for the value decoded with UseNumber). Equal values
// produce equal bytes, which is what idempotency compares. The result is a
// new slice; raw is not retained.
func CanonicalJSON(raw []byte) (json.RawMessage, error) {
	if out, ok := canonicalFast(raw); ok {
		return out, nil
	}
	return canonicalSlow(raw)
}

// CanonicalObject is CanonicalJSON for values that must be JSON objects;
// empty input and null become {}.
func CanonicalObject(raw []byte) (json.RawMessage, error) {
	trimmed := bytes.TrimSpace(raw)
	if len(trimmed) == 0 || string(trimmed) == "null" {
		return json.RawMessage("{}"), nil
	}
	if trimmed[0] != '{' {
		return nil, ErrNotObject
	}
	return CanonicalJSON(trimmed)
}

// Fingerprint identifies the idempotent part of a create request: the task
// type, the canonical input and the attachments' names, types, sizes and
// digests. Metadata is deliberately not part of it.
func Fingerprint(taskType string, canonicalInput []byte, attachments []Attachment) string {
	// The SHA-256 of "<length>:<bytes>" for each field in turn. Requests
	// without attachments and with a small input (nearly all) are hashed
	// from one buffer on the stack.
	var (
		buf [512]byte
		sum [sha256.Size]byte
	)
	if len(attachments) == 0 && len(taskType)+len(canonicalInput)+2*21 <= len(buf) {
		pre := appendField(buf[:0], taskType)
		pre = appendField(pre, canonicalInput)
		sum = sha256.Sum256(pre)
	} else {
		h := sha256.New()
		writeField := func(s string) {
			var n [21]byte
			h.Write(append(strconv.AppendInt(n[:0], int64(len(s)), 10), ':'))
			io.WriteString(h, s)
		}
		writeField(taskType)
		var n [21]byte
		h.Write(append(strconv.AppendInt(n[:0], int64(len(canonicalInput)), 10), ':'))
		h.Write(canonicalInput)
		for _, a := range attachments {
			writeField(a.Filename)
			writeField(a.ContentType)
			writeField(strconv.FormatInt(a.Size, 10))
			writeField(a.SHA256)
		}
		h.Sum(sum[:0])
	}
	var text [2 * sha256.Size]byte
	hex.Encode(text[:], sum[:])
	return string(text[:])
}

// appendField appends one field of a fingerprint's input: its length in
// decimal, a colon, and its bytes.
func appendField[T string | []byte](dst []byte, field T) []byte {
	dst = strconv.AppendInt(dst, int64(len(field)), 10)
	dst = append(dst, ':')
	return append(dst, field...)
}

// NewAttachment builds an Attachment from uploaded content, computing its
// size and digest.
func NewAttachment(filename, contentType string, content []byte) Attachment {
	sum := sha256.Sum256(content)
	return Attachment{
		Filename:    filename,
		ContentType: contentType,
		Size:        int64(len(content)),
		SHA256:      hex.EncodeToString(sum[:]),
		Content:     content,
	}
}

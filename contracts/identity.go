package contracts

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
)

// NewID returns a random 128-bit identifier as 32 lowercase hex digits, the
// form of task and suspension ids.
func NewID() string {
	var b [16]byte
	if _, err := io.ReadFull(rand.Reader, b[:]); err != nil {
		panic(fmt.Sprintf("taskbridge: crypto/rand: %v", err))
	}
	return hex.EncodeToString(b[:])
}

// ErrNotObject is returned by CanonicalObject for JSON that is not an object.
var ErrNotObject = errors.New("taskbridge: JSON value is not an object")

// CanonicalJSON re-encodes a JSON value with object keys sorted and no
// insignificant whitespace, keeping numbers exactly as written. Equal values
// produce equal bytes, which is what idempotency compares.
func CanonicalJSON(raw []byte) (json.RawMessage, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	if _, err := dec.Token(); err == nil {
		return nil, errors.New("trailing data after JSON value")
	}
	return json.Marshal(v)
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
	h := sha256.New()
	writeField := func(s string) {
		var n [20]byte
		h.Write(strconv.AppendInt(n[:0], int64(len(s)), 10))
		h.Write([]byte{':'})
		io.WriteString(h, s)
	}
	writeField(taskType)
	writeField(string(canonicalInput))
	for _, a := range attachments {
		writeField(a.Filename)
		writeField(a.ContentType)
		writeField(strconv.FormatInt(a.Size, 10))
		writeField(a.SHA256)
	}
	return hex.EncodeToString(h.Sum(nil))
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

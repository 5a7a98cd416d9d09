//go:build !race

package contracts

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Allocation counts of the request path's helpers (not under -race, which
// allocates on its own).

func TestCanonicalObjectAllocations(t *testing.T) {
	raw := []byte(`{"clientRef":"abc","n":1,"items":[1,2,3],"nested":{"b":true,"a":null}}`)
	var (
		out []byte
		err error
	)
	allocs := testing.AllocsPerRun(200, func() {
		out, err = CanonicalObject(raw)
	})
	require.NoError(t, err)
	require.Equal(t, `{"clientRef":"abc","items":[1,2,3],"n":1,"nested":{"a":null,"b":true}}`, string(out))
	assert.Equal(t, 1.0, allocs, "CanonicalObject allocates only its result")
}

func TestFingerprintAndNewIDAllocations(t *testing.T) {
	input := []byte(`{"n":1}`)
	var fp, id string
	allocs := testing.AllocsPerRun(200, func() { fp = Fingerprint("bench.hold", input, nil) })
	assert.Equal(t, 1.0, allocs, "Fingerprint allocates only its text")
	assert.Len(t, fp, 64)
	allocs = testing.AllocsPerRun(200, func() { id = NewID() })
	assert.Equal(t, 1.0, allocs, "NewID allocates only its text")
	assert.Len(t, id, 32)
}

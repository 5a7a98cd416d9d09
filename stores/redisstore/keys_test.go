package redisstore

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// hashTag returns the part of key Redis Cluster hashes: the text between
// the first '{' and the next '}' when non-empty, else the whole key.
func hashTag(key string) string {
	open := strings.IndexByte(key, '{')
	if open < 0 {
		return key
	}
	end := strings.IndexByte(key[open+1:], '}')
	if end <= 0 {
		return key
	}
	return key[open+1 : open+1+end]
}

// TestScriptKeysShareASlot: the keys each script is given hash to one tag,
// including for task ids holding braces, colons or spaces.
func TestScriptKeysShareASlot(t *testing.T) {
	k := keys{prefix: DefaultKeyPrefix}
	for _, task := range []string{"abc", "a}b", "{x}", "}", "{", "a b:c", "ünï", "", "%", "%41"} {
		t.Run(task, func(t *testing.T) {
			tag := hashTag(k.task(task))
			for _, key := range []string{k.events(task), k.meta(task)} {
				assert.Equal(t, tag, hashTag(key), key)
			}
			susp := hashTag(k.suspOpen())
			for _, key := range []string{k.suspension(task, "s}1"), k.suspPending()} {
				assert.Equal(t, susp, hashTag(key), key)
			}
			rcpt := hashTag(k.rcptExpiry())
			assert.Equal(t, rcpt, hashTag(k.receipt(task, "{a}")))
			assert.NotEqual(t, susp, rcpt)
		})
	}
}

// TestTagIsOneToOne: distinct task ids never share a tag, in particular
// an id and the encoded form of another.
func TestTagIsOneToOne(t *testing.T) {
	ids := []string{"abc", "A", "%41", "{A}", "}", "{", "", "%", "%%", "a%b", "7b417d"}
	seen := map[string]string{}
	for _, id := range ids {
		tg := tag(id)
		assert.NotContains(t, tg, "{")
		assert.NotContains(t, tg, "}")
		assert.NotEmpty(t, tg)
		if prev, dup := seen[tg]; dup {
			t.Errorf("ids %q and %q share tag %q", prev, id, tg)
		}
		seen[tg] = id
	}
	assert.Equal(t, "abc", tag("abc"))
}

func TestMemberRoundTrip(t *testing.T) {
	for _, tc := range []struct{ task, id string }{
		{"t", "s"}, {"a:b", "c"}, {"a", "b:c"}, {"", "x"}, {"12:3", ""}, {"{}", "::"},
	} {
		m := member(tc.task, tc.id)
		task, id, ok := parseMember(m)
		require.True(t, ok, m)
		assert.Equal(t, tc.task, task)
		assert.Equal(t, tc.id, id)
	}
	for _, bad := range []string{"", "x", ":a", "5:ab", "2:abc", "-1:a:b"} {
		_, _, ok := parseMember(bad)
		assert.False(t, ok, bad)
	}
}

func TestConfigDefaults(t *testing.T) {
	c, err := newConfig(Options{})
	require.NoError(t, err)
	assert.Equal(t, DefaultKeyPrefix, c.prefix)
	assert.EqualValues(t, DefaultMaxEventsPerTask, c.maxEvents)
	assert.EqualValues(t, DefaultMaxEventsPerTask/16, c.trimSlack)
	assert.Equal(t, DefaultActiveTTL, c.activeTTL)
	assert.Equal(t, DefaultTerminalTTL, c.terminalTTL)
	assert.Equal(t, DefaultReceiptTTL, c.receiptTTL)
	assert.Equal(t, DefaultFeedPingInterval, c.pingEvery)

	off, err := newConfig(Options{MaxEventsPerTask: -1, ActiveTTL: -1, TerminalTTL: -1, ReceiptTTL: -1})
	require.NoError(t, err)
	assert.Zero(t, off.maxEvents)
	assert.Zero(t, off.activeTTL)
	assert.Zero(t, off.terminalTTL)
	assert.Zero(t, off.receiptTTL)
	three, err := newConfig(Options{MaxEventsPerTask: 3})
	require.NoError(t, err)
	assert.EqualValues(t, 1, three.trimSlack)

	for _, bad := range []string{"bad{", "bad}"} {
		_, err = newConfig(Options{KeyPrefix: bad})
		assert.ErrorContains(t, err, "must not contain '{' or '}'", bad)
	}
}

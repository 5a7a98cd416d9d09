package wsframe

import (
	"sync"

	"github.com/gofiber/contrib/websocket"
)

// UpgraderConfig returns cfg adjusted for a connection this package frames:
// the streaming runtime writes pre-encoded frames straight to the socket and
// parses client frames with Decoder, so the upgrader's own read and write
// buffers are cut to the minimum it allows and never used, and per-message
// compression (which the runtime does not speak) is off. Pass the result to
// websocket.New.
func UpgraderConfig(cfg websocket.Config) websocket.Config {
	cfg.ReadBufferSize = 1
	cfg.WriteBufferSize = 1
	cfg.WriteBufferPool = unusedWritePool
	cfg.EnableCompression = false
	return cfg
}

// unusedWritePool is handed to the upgrader so that it pools nothing.
var unusedWritePool = &sync.Pool{}

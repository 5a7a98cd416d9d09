module github.com/taskbridge/taskbridge-fiber/_examples/hostapp

go 1.26.0

require (
	github.com/gofiber/fiber/v2 v2.52.15
	github.com/stretchr/testify v1.12.1
	github.com/taskbridge/taskbridge-fiber v0.0.0
	go.uber.org/goleak v1.3.0
	go.uber.org/zap v1.28.0
)

require (
	github.com/fasthttp/websocket v1.5.8 // indirect
	github.com/go-json-experiment/json v1.27.2 // indirect
	github.com/gofiber/contrib/websocket v1.3.4 // indirect
	github.com/google/uuid v1.6.0 // indirect
	github.com/klauspost/compress v1.20.3 // indirect
	github.com/mattn/go-colorable v0.1.13 // indirect
	github.com/mattn/go-isatty v0.0.20 // indirect
	github.com/mattn/go-runewidth v0.0.16 // indirect
	github.com/molecule-man/go-brrr v1.3.1 // indirect
	github.com/rivo/uniseg v0.2.0 // indirect
	github.com/savsgio/gotils v0.0.0-20240303185622-093b76447511 // indirect
	github.com/valyala/bytebufferpool v1.0.0 // indirect
	github.com/valyala/fasthttp v1.78.0 // indirect
	go.uber.org/multierr v1.10.0 // indirect
	go.yaml.in/yaml/v3 v3.0.5 // indirect
	golang.org/x/net v0.62.0 // indirect
	golang.org/x/sys v0.49.0 // indirect
)

replace github.com/taskbridge/taskbridge-fiber => ../..

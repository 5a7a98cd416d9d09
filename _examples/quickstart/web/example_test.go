package web_test

import (
	"fmt"
	"net/http/httptest"

	"github.com/gofiber/fiber/v2"

	"github.com/taskbridge/taskbridge-fiber/_examples/quickstart/web"
)

// ExampleRegister mounts the demo page next to the TaskBridge routes (the
// quickstart calls bridge.Register(app) and then web.Register(app)).
func ExampleRegister() {
	app := fiber.New(fiber.Config{DisableStartupMessage: true})
	web.Register(app)

	resp, err := app.Test(httptest.NewRequest("GET", "/", nil))
	if err != nil {
		panic(err)
	}
	defer resp.Body.Close()
	fmt.Println(resp.StatusCode, resp.Header.Get("Content-Type"))
	// Output: 200 text/html; charset=utf-8
}

package spec_test

import (
	"encoding/json"
	"fmt"
	"sort"

	"github.com/taskbridge/taskbridge-fiber/spec"
)

// Build describes the routes a server mounted, at their paths.
func ExampleBuild() {
	raw, err := spec.Build([]spec.Route{
		{OperationID: spec.OpCreateTask, Method: "POST", Path: "/projects/:projectId/tasks"},
		{OperationID: spec.OpGetTask, Method: "GET", Path: "/projects/:projectId/tasks/:taskId"},
	})
	if err != nil {
		panic(err)
	}
	var doc struct {
		Paths map[string]map[string]struct {
			OperationID string `json:"operationId"`
		} `json:"paths"`
	}
	if err := json.Unmarshal(raw, &doc); err != nil {
		panic(err)
	}
	var lines []string
	for path, item := range doc.Paths {
		for method, op := range item {
			lines = append(lines, method+" "+path+" "+op.OperationID)
		}
	}
	sort.Strings(lines)
	for _, l := range lines {
		fmt.Println(l)
	}
	// Output:
	// get /projects/{projectId}/tasks/{taskId} getTask
	// post /projects/{projectId}/tasks createTask
}

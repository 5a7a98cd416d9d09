// Package spec holds the project's own description of the TaskBridge v1
// wire protocol as this library serves it: an OpenAPI 3.1 document of every
// route (openapi.json) and a JSON Schema (draft 2020-12) of every request
// and response body, SSE data line and WebSocket frame (schemas/), the
// library's additions to the protocol included and marked with
// x-taskbridge-extension. The files are embedded; the tests of the
// repository validate what the server sends against them, so they describe
// the code, not an intention.
//
// The schema files stand alone: each has an $id under SchemaBaseURI and
// refers to the others by relative file name. Document bundles them into
// one self-contained OpenAPI document (each file inlined as a component,
// references rewritten), and Build derives from it the document of the
// routes a server actually mounted, at their paths (which is what
// fiberbridge serves on its opt-in OpenAPI route).
//
// The package imports only the standard library.
package spec

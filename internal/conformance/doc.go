// Package conformance checks frames and bodies against the TaskBridge v1
// protocol for the project's tests. A stream frame must pass the strict
// decoder of internal/frames; frames and bodies must pass the project's own
// JSON Schemas (package spec, embedded in the repository, so the check runs
// in every clone) and, where the reference protocol directory exists
// (../shared/protocol next to the module root, or
// $TASKBRIDGE_PROTOCOL_DIR), the reference's schemas too, for every shape
// the reference describes. The reference files are read in place, never
// copied into the project.
//
// Document validates HTTP responses against an OpenAPI document, such as
// the one a bridge serves of the routes it mounted.
package conformance

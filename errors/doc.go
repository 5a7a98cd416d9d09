// Package bridgeerr holds the stable error codes of the TaskBridge v1
// protocol, the typed Error that carries one, its HTTP status, and the JSON
// envelope `{code, message, details, timestamp}` every failure is rendered
// as.
//
// The directory is errors/ but the package is bridgeerr, so it never
// shadows the standard library's errors package. Clients match codes, not
// messages. An Error wraps its internal cause for errors.Is/As and logs, but
// the cause never reaches a client: an INTERNAL_ERROR's envelope always says
// only "internal error".
package bridgeerr

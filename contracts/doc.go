// Package contracts holds the TaskBridge v1 wire models, the domain records,
// the commands and results of the service layer, and the ports (store,
// executor and policy interfaces) that the rest of the library is built on.
// TaskBridge v1 is the protocol of taskbridge-fastapi
// (https://github.com/nikkiw/task-bridge); its clients, and this module's
// client package, decode the same models. Stores is the bundle of the four
// store ports that memstore.New and redisstore.New return.
//
// It imports only the standard library so that every other package, and
// workers in other processes, can depend on it cheaply.
//
// Wire models serialise with the protocol's camelCase field names. Events are
// built only through the typed payload constructors (Started, Progress,
// Message, Suspended, ActionAccepted, Completed, Failed, Cancelled) or
// ParseDraft, all of which validate against the protocol's payload rules, so
// an EventDraft that reaches a store is always schema-valid. Event ids have
// the `ms-seq` shape of Redis stream ids and are ordered numerically by
// EventID.Compare, never as strings.
package contracts

package redisstore

import (
	"encoding/hex"
	"strconv"
	"strings"
)

// keys builds every key and channel name from the prefix P. The layout (also
// in README.md):
//
//	P{<taskId>}:task        hash    task record: rec (JSON at create), status, cancel, reason, updated
//	P{<taskId>}:events      stream  the task's events: type, createdAt (unix ms), payload (JSON)
//	P{<taskId>}:meta        hash    terminal (id of the terminal event), trimmed (highest trimmed id),
//	                                ended, and the task's summary (summary.go)
//	P{<taskId>}:appends     hash    idempotency key of an append -> id of the event it stored
//	Powner:{<owner>}:tasks  zset    the owner's tasks in listing order (ownerindex.go)
//	Pidem:<n>:<owner>:<crid> string task id claimed by the owner-scoped idempotency key (n = len(owner))
//	P{susp}:<n>:<taskId>:<suspendId>  hash  suspension: rec (JSON at create), status, handoff, action, resolvedAt
//	P{susp}:open            zset    OPEN suspensions with a deadline, scored by the deadline (unix µs)
//	P{susp}:pending         zset    RESOLVED suspensions whose handoff is PENDING, scored by resolution time
//	P{rcpt}:<n>:<taskId>:<clientActionId> hash  action receipt: rec (JSON), exp (unix µs, 0 = none)
//	P{rcpt}:expiry          zset    receipts with an expiry, scored by it (unix µs)
//	P{lease}:deadlines      zset    leased task ids, scored by the lease's deadline (unix ms, server clock)
//	P{lease}:holders        hash    leased task id -> holder (the instance running the task)
//	Pchanges                channel change feed: "<taskId> <eventId>" per append
//	Pticket:<key>           string  stream ticket (JSON) until it is taken or expires (TicketStore)
//
// <taskId> in a tag is the id itself, or '%' and the id in hex when it holds
// a brace, is empty or starts with '%' (see tag). The braces are Redis
// Cluster hash tags: all keys of one task share a slot,
// and all suspension keys (and all receipt keys) share one slot each, so
// every script touches a single slot. Index members are the key suffix after
// the tag ("<n>:<taskId>:<id>"), so the record key is the tag plus member.
type keys struct {
	prefix string
}

func (k keys) task(taskID string) string   { return k.prefix + "{" + tag(taskID) + "}:task" }
func (k keys) events(taskID string) string { return k.prefix + "{" + tag(taskID) + "}:events" }
func (k keys) meta(taskID string) string   { return k.prefix + "{" + tag(taskID) + "}:meta" }
func (k keys) appends(taskID string) string {
	return k.prefix + "{" + tag(taskID) + "}:appends"
}

// tag returns the hash tag of a task's keys: the task id itself, or, when
// the id would not survive as a tag (it holds a brace, is empty or starts
// with '%'), '%' followed by the id in hex. The mapping is one-to-one, so
// distinct tasks never share keys.
func tag(taskID string) string {
	if taskID != "" && taskID[0] != '%' && !strings.ContainsAny(taskID, "{}") {
		return taskID
	}
	return "%" + hex.EncodeToString([]byte(taskID))
}
func (k keys) channel() string { return k.prefix + "changes" }

// cancelChannel is the cancel relay's channel: "<prefix>cancel". Like the
// change feed's channel it carries no hash tag; PUBLISH reaches the
// subscribers on every node of a cluster.
func (k keys) cancelChannel() string { return k.prefix + "cancel" }

// ticket is the key of a stream ticket stored under key (a hash of the
// ticket, see contracts.TicketStore).
func (k keys) ticket(key string) string { return k.prefix + "ticket:" + key }

func (k keys) idem(ownerID, clientRequestID string) string {
	return k.prefix + "idem:" + strconv.Itoa(len(ownerID)) + ":" + ownerID + ":" + clientRequestID
}

// member encodes (taskID, id) unambiguously: a length prefix for taskID.
func member(taskID, id string) string {
	return strconv.Itoa(len(taskID)) + ":" + taskID + ":" + id
}

// parseMember is the inverse of member.
func parseMember(m string) (taskID, id string, ok bool) {
	colon := -1
	for i := 0; i < len(m); i++ {
		if m[i] == ':' {
			colon = i
			break
		}
	}
	if colon <= 0 {
		return "", "", false
	}
	n, err := strconv.Atoi(m[:colon])
	if err != nil || n < 0 || colon+1+n+1 > len(m) || m[colon+1+n] != ':' {
		return "", "", false
	}
	return m[colon+1 : colon+1+n], m[colon+1+n+1:], true
}

func (k keys) suspTag() string { return k.prefix + "{susp}:" }
func (k keys) suspension(taskID, suspendID string) string {
	return k.suspTag() + member(taskID, suspendID)
}
func (k keys) suspOpen() string    { return k.suspTag() + "open" }
func (k keys) suspPending() string { return k.suspTag() + "pending" }

func (k keys) leaseDeadlines() string { return k.prefix + "{lease}:deadlines" }
func (k keys) leaseHolders() string   { return k.prefix + "{lease}:holders" }

func (k keys) rcptTag() string { return k.prefix + "{rcpt}:" }
func (k keys) receipt(taskID, clientActionID string) string {
	return k.rcptTag() + member(taskID, clientActionID)
}
func (k keys) rcptExpiry() string { return k.rcptTag() + "expiry" }

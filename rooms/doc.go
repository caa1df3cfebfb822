// Package rooms holds chat rooms: one actor goroutine per room and the
// Registry that creates, finds, supervises and drops them.
//
// # Why actors
//
// A room's state (members, topic, history) is touched only by the room's own
// goroutine, which takes typed requests from a mailbox one at a time. There
// are no locks around room state and nothing to order: a JOIN, a message and
// a PART from different connections are serialised by the mailbox, so every
// member sees the same sequence of events. Rooms never share state with each
// other, so a busy room cannot slow a quiet one, and a panic while handling
// one request is recovered inside that room (its state stays, the request is
// answered with an error) without any other room noticing.
//
// A room never blocks on a member: it hands each encoded line to the
// member's Client.Send, which must queue without blocking and report an
// overflow. The overflowing connection disconnects itself; the room just
// goes on. A message is encoded once and the same immutable bytes are queued
// to every member, so fan-out allocates nothing per recipient.
//
// # Lifetime
//
// Rooms exist while they have members, or history younger than the idle
// TTL. A room decides it might be done from inside its actor, but it may only
// leave the Registry's map under the Registry lock, and only when no JOIN is
// on its way (the pending counter is raised under that same lock before a
// JOIN is sent). So an "empty, drop it" decision can never race a concurrent
// JOIN into a room that no longer exists.
package rooms

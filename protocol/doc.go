// Package protocol is livechat's wire format: parsing and encoding IRC lines
// (RFC 1459 framing with IRCv3 message tags), reading lines off a connection
// within the protocol's length limits, and the naming and text rules shared by
// every part of the daemon.
//
// The package is deliberately free of I/O policy and state: it never logs,
// never closes connections and holds no package-level mutable state other
// than a sync.Pool of read buffers that Readers share (see Reader), so the
// daemon decides what an error means (ignore a blank line, answer
// ERR_INPUTTOOLONG, drop the client) and tests can use it in isolation.
//
// Strings produced by Parse share memory with the parsed line. That is what
// keeps parsing cheap; a caller that retains a small field of a large line for
// a long time (say, a nickname from a line full of tags) may want
// strings.Clone to let the rest of the line be collected.
package protocol

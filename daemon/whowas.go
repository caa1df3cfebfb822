package daemon

import (
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/livechat/livechat/protocol"
)

func init() {
	register(&command{name: "WHOWAS", run: handleWHOWAS, minParams: 1, help: "WHOWAS <nick> [count] - who used a nick that is gone, newest first"})
}

// whowasEntry is a nick as it was when its user left it.
type whowasEntry struct {
	nick, user, host, ip, realname, account, server string
	at                                              time.Time
}

// whowasRing keeps the most recent nicks users left (by disconnecting or
// renaming), limits.whowas of them, the oldest overwritten first. It is
// touched on a disconnect, a rename and WHOWAS only. Safe for concurrent
// use.
type whowasRing struct {
	size func() int // the limit in force, read on every record

	mu      sync.Mutex
	entries []whowasEntry // the ring; len is its capacity
	next    int           // where the next entry goes
	n       int           // entries held
}

// record remembers that s left nick.
func (w *whowasRing) record(s *Session, nick string) {
	s.mu.Lock()
	e := whowasEntry{nick: nick, user: s.user, host: s.host, ip: s.ip, realname: s.realname, account: s.account, server: s.srv.Config().ServerName, at: time.Now()}
	s.mu.Unlock()
	size := w.size()
	w.mu.Lock()
	defer w.mu.Unlock()
	if size != len(w.entries) {
		w.resizeLocked(size)
	}
	if size == 0 {
		return
	}
	w.entries[w.next] = e
	w.next = (w.next + 1) % size
	w.n = min(w.n+1, size)
}

// resizeLocked moves the newest entries that fit into a ring of size.
func (w *whowasRing) resizeLocked(size int) {
	keep := min(w.n, size)
	ring := make([]whowasEntry, size)
	for i := range keep {
		ring[keep-1-i] = w.entries[w.back(i)]
	}
	w.entries, w.n, w.next = ring, keep, 0
	if size > 0 {
		w.next = keep % size
	}
}

// back returns the index of the entry i places before the newest.
func (w *whowasRing) back(i int) int {
	return ((w.next-1-i)%len(w.entries) + len(w.entries)) % len(w.entries)
}

// lookup returns up to count entries for nick, newest first (count <= 0:
// all of them).
func (w *whowasRing) lookup(nick string, count int) []whowasEntry {
	folded := protocol.FoldNick(nick)
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []whowasEntry
	for i := range w.n {
		e := w.entries[w.back(i)]
		if protocol.FoldNick(e.nick) == folded {
			out = append(out, e)
			if len(out) == count {
				break
			}
		}
	}
	return out
}

// handleWHOWAS serves WHOWAS <nick>[,<nick>...] [count]: for each nick, the
// users who had it, newest first, with the host everyone saw (the cloak)
// and, to operators, the real address as WHOIS shows it.
func handleWHOWAS(s *Session, m *protocol.Message, _ []byte) error {
	count, _ := strconv.Atoi(m.Param(1)) // not a positive number: all
	nicks := strings.Split(m.Params[0], ",")
	for _, nick := range nicks[:min(len(nicks), maxTargets)] {
		if nick == "" {
			continue
		}
		entries := s.srv.whowas.lookup(nick, count)
		if len(entries) == 0 {
			s.numeric(protocol.ERR_WASNOSUCHNICK, nick, "There was no such nickname")
		}
		for _, e := range entries {
			if !s.pace() {
				return nil
			}
			s.numeric(protocol.RPL_WHOWASUSER, e.nick, e.user, e.host, "*", e.realname)
			if s.oper.Load() {
				ip := hostIP(e.ip)
				s.numeric(protocol.RPL_WHOISACTUALLY, e.nick, e.user+"@"+ip, ip, "Actual user@host, Actual IP")
			}
			if e.account != "" {
				s.numeric(protocol.RPL_WHOISACCOUNT, e.nick, e.account, "was logged in as")
			}
			s.numeric(protocol.RPL_WHOISSERVER, e.nick, e.server, e.at.UTC().Format("Mon Jan 2 15:04:05 2006 UTC"))
		}
		s.numeric(protocol.RPL_ENDOFWHOWAS, nick, "End of WHOWAS")
	}
	return nil
}

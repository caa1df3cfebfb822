package daemon

import (
	"context"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/livechat/livechat/daemon/cluster"
	"github.com/livechat/livechat/protocol"
	"github.com/livechat/livechat/rooms"
)

func init() {
	register(&command{name: "MONITOR", run: handleMONITOR, minParams: 1, help: "MONITOR +|- <nick,...> | L | S | C - be told when people come online and leave"})
}

// monitorRegistry is who MONITORs whom (IRCv3 monitor). It is touched on
// MONITOR, when a user registers, renames or leaves, and when a watched
// user's away, account or real name changes (extended-monitor); never on
// room traffic. Its size is bounded by limits.monitor per session, and a
// session's entries go with it. Safe for concurrent use.
type monitorRegistry struct {
	mu sync.Mutex
	// watchers holds, per folded nick, the sessions watching it.
	watchers map[string]map[*Session]struct{}
	// lists holds each watching session's nicks: folded to as typed.
	lists map[*Session]map[string]string
	// remote holds, in a cluster, the watched nicks that users of other
	// nodes hold (folded to as spelled), so that their release is told.
	remote map[string]string
}

func newMonitorRegistry() *monitorRegistry {
	return &monitorRegistry{
		watchers: make(map[string]map[*Session]struct{}),
		lists:    make(map[*Session]map[string]string),
		remote:   make(map[string]string),
	}
}

// add puts nicks on s's list while it has fewer than limit entries, and
// returns those on it afterwards (already there or added) and those that
// did not fit.
func (m *monitorRegistry) add(s *Session, nicks []string, limit int) (on, full []string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	list := m.lists[s]
	for _, nick := range nicks {
		folded := protocol.FoldNick(nick)
		if _, ok := list[folded]; ok {
			on = append(on, nick)
			continue
		}
		if len(list) >= limit {
			full = append(full, nick)
			continue
		}
		if list == nil {
			list = make(map[string]string)
			m.lists[s] = list
		}
		list[folded] = nick
		w := m.watchers[folded]
		if w == nil {
			w = make(map[*Session]struct{})
			m.watchers[folded] = w
		}
		w[s] = struct{}{}
		on = append(on, nick)
	}
	return on, full
}

// remove takes nicks off s's list; nil takes them all.
func (m *monitorRegistry) remove(s *Session, nicks []string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	list := m.lists[s]
	if nicks == nil {
		for folded := range list {
			m.unwatchLocked(s, folded)
		}
		delete(m.lists, s)
		return
	}
	for _, nick := range nicks {
		folded := protocol.FoldNick(nick)
		if _, ok := list[folded]; ok {
			delete(list, folded)
			m.unwatchLocked(s, folded)
		}
	}
	if len(list) == 0 {
		delete(m.lists, s)
	}
}

func (m *monitorRegistry) unwatchLocked(s *Session, folded string) {
	if w := m.watchers[folded]; w != nil {
		delete(w, s)
		if len(w) == 0 {
			delete(m.watchers, folded)
			delete(m.remote, folded)
		}
	}
}

// noteRemote records that a user of another node holds the watched nick.
func (m *monitorRegistry) noteRemote(nick string) {
	folded := protocol.FoldNick(nick)
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.watchers[folded]) > 0 {
		m.remote[folded] = nick
	}
}

// nickClaimChanged turns the cluster's nick claims into MONITOR numerics
// for users of other nodes: a claim by another node of a watched nick is
// 730, the release of one known to be held there 731. This node's own
// sessions announce themselves (registration, renames, gone).
func (srv *Server) nickClaimChanged(folded string, h *cluster.Holder) {
	m := srv.monitors
	var code, text string
	m.mu.Lock()
	switch {
	case h != nil && h.Node == srv.nicks.claims.Node():
		delete(m.remote, folded)
	case h != nil:
		if len(m.watchers[folded]) > 0 {
			m.remote[folded] = h.Nick
			code, text = protocol.RPL_MONONLINE, h.Nick
		}
	default:
		if nick, ok := m.remote[folded]; ok {
			delete(m.remote, folded)
			code, text = protocol.RPL_MONOFFLINE, nick
		}
	}
	m.mu.Unlock()
	if code != "" {
		srv.monitorNotify(folded, code, text)
	}
}

// list returns s's nicks as typed, sorted.
func (m *monitorRegistry) list(s *Session) []string {
	m.mu.Lock()
	out := make([]string, 0, len(m.lists[s]))
	for _, nick := range m.lists[s] {
		out = append(out, nick)
	}
	m.mu.Unlock()
	slices.Sort(out)
	return out
}

// watching returns the sessions watching nick.
func (m *monitorRegistry) watching(nick string) []*Session {
	folded := protocol.FoldNick(nick)
	m.mu.Lock()
	defer m.mu.Unlock()
	w := m.watchers[folded]
	if len(w) == 0 {
		return nil
	}
	out := make([]*Session, 0, len(w))
	for s := range w {
		out = append(out, s)
	}
	return out
}

// handleMONITOR serves MONITOR + - C L S. Targets must be nicks: masks
// would let anyone follow a person across nick changes.
func handleMONITOR(s *Session, m *protocol.Message, _ []byte) error {
	reg := s.srv.monitors
	switch sub := strings.ToUpper(m.Params[0]); sub {
	case "+", "-":
		if m.Param(1) == "" {
			return needMoreParams("MONITOR")
		}
		var nicks []string
		for _, nick := range strings.Split(m.Params[1], ",") {
			if nick == "" {
				continue
			}
			if protocol.CheckNick(nick) != nil {
				if sub == "+" {
					s.numeric(protocol.ERR_ERRONEUSNICKNAME, nick, "Erroneous nickname: MONITOR takes nicks, not masks")
				}
				continue
			}
			nicks = append(nicks, nick)
		}
		if sub == "-" {
			if len(nicks) > 0 { // nil would clear the list
				reg.remove(s, nicks)
			}
			return nil
		}
		limit := s.srv.Config().Limits.Monitor
		on, full := reg.add(s, nicks, limit)
		s.monitorStatus(on)
		if len(full) > 0 {
			s.srv.metrics.limitsHit.WithLabelValues("monitor").Inc()
			s.numeric(protocol.ERR_MONLISTFULL, strconv.Itoa(limit), strings.Join(full, ","), "Monitor list is full")
		}
	case "C":
		reg.remove(s, nil)
	case "L":
		s.numericList(protocol.RPL_MONLIST, reg.list(s))
		s.numeric(protocol.RPL_ENDOFMONLIST, "End of MONITOR list")
	case "S":
		s.monitorStatus(reg.list(s))
	default:
		return numErr(protocol.ERR_UNKNOWNERROR, "MONITOR", sub, "Unknown MONITOR subcommand: use + - C L or S")
	}
	return nil
}

// monitorStatus answers 730 for the nicks that are online and 731 for
// the others. The nicks are on the session's list already, so one that
// comes or goes meanwhile is announced too: at worst twice, never missed.
func (s *Session) monitorStatus(nicks []string) {
	var online, offline []string
	for _, nick := range nicks {
		if who, ok := s.srv.onlineAs(nick); ok {
			online = append(online, who)
		} else {
			offline = append(offline, nick)
		}
	}
	s.numericList(protocol.RPL_MONONLINE, online)
	s.numericList(protocol.RPL_MONOFFLINE, offline)
}

// onlineAs reports whether someone uses nick, as nick!user@host, or in a
// cluster as the nick alone for a user of another node.
func (srv *Server) onlineAs(nick string) (string, bool) {
	if t := srv.nicks.get(nick); t != nil && t.registered.Load() {
		// A renamer keeps its old nick reserved for a moment: it is
		// online under its new one only.
		t.mu.Lock()
		defer t.mu.Unlock()
		if protocol.FoldNick(t.nick) != protocol.FoldNick(nick) {
			return "", false
		}
		return t.nick + "!" + t.user + "@" + t.host, true
	}
	if srv.nicks.claims == nil {
		return "", false
	}
	ctx, cancel := context.WithTimeout(context.Background(), claimTimeout)
	defer cancel()
	h, ok, err := srv.nicks.claims.Holder(ctx, nick)
	if err != nil || !ok || h.Node == srv.nicks.claims.Node() {
		return "", false
	}
	srv.monitors.noteRemote(h.Nick)
	return h.Nick, true
}

// monListLen bounds the comma-separated list of one 730-732 line, so the
// line fits in 512 bytes with the server name and the client's nick.
const monListLen = 400

// numericList sends items as comma-separated lists of code numerics, as
// many as needed; none when items is empty.
func (s *Session) numericList(code string, items []string) {
	for len(items) > 0 {
		n, size := 0, 0
		for n < len(items) && (n == 0 || size+1+len(items[n]) <= monListLen) {
			size += len(items[n]) + 1
			n++
		}
		s.numeric(code, strings.Join(items[:n], ","))
		items = items[n:]
	}
}

// monitorNotify tells those who MONITOR nick, with one numeric each.
// It may run on any session's goroutine.
func (srv *Server) monitorNotify(nick, code, text string) {
	ws := srv.monitors.watching(nick)
	if len(ws) == 0 {
		return
	}
	server := srv.Config().ServerName
	for _, w := range ws {
		w.Send((&protocol.Message{Source: server, Command: code, Params: []string{w.Nick(), text}}).AppendTo(nil))
	}
}

// monitorOnline tells the watchers of s's nick that it is online.
func (s *Session) monitorOnline() {
	if p := s.prefix(); p != "*" {
		s.srv.monitorNotify(s.Nick(), protocol.RPL_MONONLINE, p)
	}
}

// renamed is a registered session's nick change for MONITOR and WHOWAS:
// the old nick is remembered, and its watchers hear it went offline and
// the new one's that it came online; a change of case is neither.
func (s *Session) renamed(old string) {
	s.srv.whowas.record(s, old)
	if protocol.FoldNick(old) == protocol.FoldNick(s.Nick()) {
		return
	}
	s.srv.monitorNotify(old, protocol.RPL_MONOFFLINE, old)
	s.monitorOnline()
}

// gone is a session's end for MONITOR and WHOWAS: its nick is remembered
// and its watchers hear it went offline, and its own list is dropped.
func (s *Session) gone() {
	s.srv.monitors.remove(s, nil)
	if !s.registered.Load() {
		return
	}
	nick := s.Nick()
	s.srv.whowas.record(s, nick)
	s.srv.monitorNotify(nick, protocol.RPL_MONOFFLINE, nick)
}

// andWatchers adds to peers the sessions that MONITOR s with
// extended-monitor, once each: they hear of its away, account, real name
// and host changes as those who share a room with it do, each once.
func (s *Session) andWatchers(peers []rooms.Client) []rooms.Client {
	ws := s.srv.monitors.watching(s.Nick())
	if len(ws) == 0 {
		return peers
	}
	var seen map[rooms.Client]struct{}
	for _, w := range ws {
		if w == s || !w.hasCap(capExtendedMonitor) {
			continue
		}
		if seen == nil {
			seen = make(map[rooms.Client]struct{}, len(peers))
			for _, p := range peers {
				seen[p] = struct{}{}
			}
		}
		if _, dup := seen[w]; !dup {
			peers = append(peers, w)
		}
	}
	return peers
}

package daemon

import (
	"errors"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/livechat/livechat/protocol"
	"github.com/livechat/livechat/rooms"
)

func init() {
	register(&command{name: "CHATHISTORY", run: handleCHATHISTORY, minParams: 1})
}

// handleCHATHISTORY answers IRCv3 draft/chathistory queries from room
// histories and private conversations.
func handleCHATHISTORY(s *Session, m *protocol.Message, _ []byte) error {
	sub := strings.ToUpper(m.Params[0])
	need := map[string]int{"LATEST": 4, "BEFORE": 4, "AFTER": 4, "AROUND": 4, "BETWEEN": 5, "TARGETS": 4}[sub]
	if need == 0 {
		return failErr("CHATHISTORY", "INVALID_PARAMS", sub, "Unknown subcommand")
	}
	if len(m.Params) < need {
		return failErr("CHATHISTORY", "NEED_MORE_PARAMS", sub, "Missing parameters")
	}
	limit, err := strconv.Atoi(m.Params[need-1])
	if err != nil || limit < 1 {
		return failErr("CHATHISTORY", "INVALID_PARAMS", sub, "Invalid limit")
	}
	limit = min(limit, s.srv.Config().History.MaxQuery)
	if sub == "TARGETS" {
		return s.historyTargets(m.Params[1], m.Params[2], limit)
	}
	target := m.Params[1]
	a, okA := parseBound(m.Params[2], sub == "LATEST")
	b, okB := rooms.Bound{}, true
	if sub == "BETWEEN" {
		b, okB = parseBound(m.Params[3], false)
	}
	if !okA || !okB {
		return failErr("CHATHISTORY", "INVALID_PARAMS", sub, target, "Invalid message reference")
	}
	sel := map[string]rooms.Selector{"LATEST": rooms.SelLatest, "BEFORE": rooms.SelBefore, "AFTER": rooms.SelAfter, "AROUND": rooms.SelAround, "BETWEEN": rooms.SelBetween}[sub]
	q := rooms.Query{Sel: sel, A: a, B: b, Limit: limit, Events: s.hasCap(capEventPlayback)}
	var events []*rooms.Event
	if name, ok := s.roomTarget(target); ok {
		r := s.srv.rooms.Get(name)
		if r == nil {
			return failErr("CHATHISTORY", "INVALID_TARGET", sub, target, "No such room")
		}
		events, err = r.History(s, q)
		if errors.Is(err, rooms.ErrNotMember) || errors.Is(err, rooms.ErrNoSuchRoom) {
			return failErr("CHATHISTORY", "INVALID_TARGET", sub, target, "You are not in that room")
		}
	} else {
		if protocol.CheckNick(target) != nil {
			return failErr("CHATHISTORY", "INVALID_TARGET", sub, target, "No such nick or room")
		}
		events, err = s.srv.privates.query(s, target, q)
	}
	if err != nil {
		return s.historyFailed(sub, target, err)
	}
	s.sendBatch("chathistory", []string{target}, func(ref []protocol.Tag) {
		f := s.Features()
		for _, e := range events {
			s.Reply(e.Render(f, ref...))
		}
	})
	return nil
}

// parseBound reads "*" (allowed only where star is true), "msgid=..." or
// "timestamp=...".
func parseBound(ref string, star bool) (rooms.Bound, bool) {
	if ref == "*" {
		return rooms.Bound{}, star
	}
	if id, ok := strings.CutPrefix(ref, "msgid="); ok && id != "" {
		return rooms.Bound{ID: id}, true
	}
	if ts, ok := strings.CutPrefix(ref, "timestamp="); ok {
		at, err := time.Parse(time.RFC3339Nano, ts)
		return rooms.Bound{At: at}, err == nil
	}
	return rooms.Bound{}, false
}

// sendBatch sends what body queues inside a batch of the given type when
// the client negotiated batch, and plainly otherwise. body gets the tags
// to put on each line.
func (s *Session) sendBatch(kind string, params []string, body func(ref []protocol.Tag)) {
	if !s.hasCap(capBatch) {
		body(nil)
		return
	}
	server := s.srv.Config().ServerName
	id := s.srv.ids.Next()
	s.reply(protocol.Message{Source: server, Command: "BATCH", Params: append([]string{"+" + id, kind}, params...)})
	body([]protocol.Tag{{Key: "batch", Value: id}})
	s.reply(protocol.Message{Source: server, Command: "BATCH", Params: []string{"-" + id}})
}

// historyTargets answers CHATHISTORY TARGETS: the rooms and people with
// messages between the two timestamps, oldest activity first.
func (s *Session) historyTargets(fromRef, toRef string, limit int) error {
	from, okA := parseBound(fromRef, false)
	to, okB := parseBound(toRef, false)
	if !okA || !okB || from.At.IsZero() || to.At.IsZero() {
		return failErr("CHATHISTORY", "INVALID_PARAMS", "TARGETS", "TARGETS takes two timestamp= references")
	}
	if from.At.After(to.At) {
		from, to = to, from
	}
	list, err := s.srv.privates.targets(s, from.At, to.At)
	if err != nil {
		return s.historyFailed("TARGETS", "*", err)
	}
	s.mu.Lock()
	joined := s.rooms()
	s.mu.Unlock()
	for _, r := range joined {
		newest, err := r.History(s, rooms.Query{Sel: rooms.SelLatest, Limit: 1})
		if err == nil && len(newest) == 1 && inSpan(newest[0].At, from.At, to.At) {
			list = append(list, historyTarget{name: r.Name(), last: newest[0].At})
		}
	}
	sort.Slice(list, func(i, j int) bool { return list[i].last.Before(list[j].last) })
	if len(list) > limit {
		list = list[:limit]
	}
	server := s.srv.Config().ServerName
	s.sendBatch("draft/chathistory-targets", nil, func(ref []protocol.Tag) {
		for _, t := range list {
			s.reply(protocol.Message{Tags: ref, Source: server, Command: "CHATHISTORY", Params: []string{"TARGETS", t.name, t.last.UTC().Format(rooms.TimeFormat)}})
		}
	})
	return nil
}

// inSpan reports whether t lies strictly between from and to, as
// CHATHISTORY TARGETS bounds are exclusive.
func inSpan(t, from, to time.Time) bool { return t.After(from) && t.Before(to) }

// historyFailed answers a query the store could not: a FAIL that says
// history is unavailable, never an empty answer that looks like none.
func (s *Session) historyFailed(sub, target string, err error) error {
	s.srv.metrics.history.errors.WithLabelValues("query").Inc()
	s.srv.log.Warn().Err(err).Str("target", target).Msg("history query failed")
	return failErr("CHATHISTORY", "MESSAGE_ERROR", sub, target, "History is unavailable right now; try again later")
}

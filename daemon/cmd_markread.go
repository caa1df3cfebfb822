package daemon

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/livechat/livechat/protocol"
	"github.com/livechat/livechat/rooms"
)

func init() {
	// No minParams: the spec wants FAIL MARKREAD NEED_MORE_PARAMS, not 461.
	register(&command{name: "MARKREAD", run: handleMARKREAD})
}

// markerTimeout bounds one read marker's trip to the accounts store.
const markerTimeout = 5 * time.Second

// handleMARKREAD serves IRCv3 draft/read-marker: `MARKREAD <target>` asks
// for the account's read marker, `MARKREAD <target> timestamp=<t>` moves it
// forward. Markers belong to accounts, so that a person's clients agree;
// a guest's live as long as its connection.
func handleMARKREAD(s *Session, m *protocol.Message, _ []byte) error {
	if len(m.Params) == 0 {
		return failErr("MARKREAD", "NEED_MORE_PARAMS", "Missing parameters")
	}
	typed := m.Params[0]
	if room, isRoom := s.roomTarget(typed); isRoom {
		typed = room // a person may leave the '#' out
	}
	name, key, ok := markerTarget(typed)
	if !ok {
		return failErr("MARKREAD", "INVALID_PARAMS", m.Params[0], "Invalid target: name a room or a nick")
	}
	account := s.Account()
	if len(m.Params) == 1 {
		at, err := s.readMarker(account, key)
		if err != nil {
			return markerFailure(s, name, err)
		}
		s.reply(s.markreadLine(name, at))
		return nil
	}
	at, ok := parseMarkerTime(m.Params[1])
	if !ok {
		return failErr("MARKREAD", "INVALID_PARAMS", name, "Invalid timestamp: use timestamp=YYYY-MM-DDThh:mm:ss.sssZ from a message's time tag")
	}
	// A marker in the future would hide every message until then.
	if now := rooms.Now(); at.After(now) {
		at = now
	}
	if account == "" {
		s.reply(s.markreadLine(name, s.setGuestMarker(key, at)))
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), markerTimeout)
	defer cancel()
	stored, moved, err := s.srv.accounts.SetReadMarker(ctx, account, key, at)
	if err != nil {
		return markerFailure(s, name, err)
	}
	line := s.markreadLine(name, stored)
	s.reply(line)
	if moved {
		// The spec: every client of the user hears of a change.
		me := s.identity()
		raw := line.AppendTo(nil)
		for _, t := range s.srv.sessionsOf(me) {
			if t != s && t.hasCap(capReadMarker) {
				t.Send(raw)
			}
		}
	}
	return nil
}

// markerTarget validates a MARKREAD target: a room (with '#') or a nick.
// It returns the name to answer with and the key markers are stored by,
// folded so that every spelling finds the same marker; room keys keep
// their '#', so no room and nick share one.
func markerTarget(typed string) (name, key string, ok bool) {
	if protocol.IsRoomName(typed) {
		name, err := protocol.RoomName(typed)
		if err != nil {
			return "", "", false
		}
		return name, protocol.FoldRoom(name), true
	}
	if protocol.CheckNick(typed) != nil {
		return "", "", false
	}
	return typed, protocol.FoldNick(typed), true
}

// parseMarkerTime reads `timestamp=<RFC 3339>`, as in a server-time tag;
// a client may not set `*`, nor a time before any message could exist.
func parseMarkerTime(p string) (time.Time, bool) {
	ts, ok := strings.CutPrefix(p, "timestamp=")
	if !ok {
		return time.Time{}, false
	}
	at, err := time.Parse(time.RFC3339Nano, ts)
	if err != nil || at.Before(time.Unix(0, 0)) {
		return time.Time{}, false
	}
	return at.UTC().Truncate(time.Millisecond), true
}

// readMarker returns the account's marker for key, or the guest
// connection's.
func (s *Session) readMarker(account, key string) (time.Time, error) {
	if account == "" {
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.rare == nil {
			return time.Time{}, nil
		}
		return s.rare.guestMarkers[key], nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), markerTimeout)
	defer cancel()
	return s.srv.accounts.ReadMarker(ctx, account, key)
}

// markreadLine is `MARKREAD <target> timestamp=<t>`, or `*` for none.
func (s *Session) markreadLine(target string, at time.Time) protocol.Message {
	ts := "*"
	if !at.IsZero() {
		ts = "timestamp=" + at.UTC().Format(rooms.TimeFormat)
	}
	return protocol.Message{Source: s.srv.Config().ServerName, Command: "MARKREAD", Params: []string{target, ts}}
}

func markerFailure(s *Session, target string, err error) error {
	s.log().Error().Err(err).Str("target", target).Msg("read marker failed")
	return failErr("MARKREAD", "INTERNAL_ERROR", target, "The read timestamp could not be set or read")
}

// joinMarkerLine tells a draft/read-marker client where it stopped reading
// in a room it joins, as the spec requires after every JOIN: the room's
// MARKREAD, or
// the FAIL if the store could not say; nil without the capability. The
// spec wants it between the JOIN and RPL_ENDOFNAMES, which only the room
// can place, so it is built before the join and handed over as bytes.
func (s *Session) joinMarkerLine(room string) []byte {
	if !s.hasCap(capReadMarker) {
		return nil
	}
	name, key, _ := markerTarget(room)
	at, err := s.readMarker(s.Account(), key)
	if err != nil {
		var re *replyError
		errors.As(markerFailure(s, name, err), &re)
		fail := protocol.Message{Source: s.srv.Config().ServerName, Command: "FAIL", Params: re.params}
		return fail.AppendTo(nil)
	}
	line := s.markreadLine(name, at)
	return line.AppendTo(nil)
}

// maxGuestMarkers bounds the read markers a guest connection keeps, as
// accounts are bounded.
const maxGuestMarkers = 1000

// setGuestMarker moves a guest's marker for key forward to at and returns
// the marker in force. Beyond the bound the marker read longest ago goes,
// as an account's do.
func (s *Session) setGuestMarker(key string, at time.Time) time.Time {
	r := s.more()
	s.mu.Lock()
	defer s.mu.Unlock()
	old, ok := r.guestMarkers[key]
	if ok && !at.After(old) {
		return old
	}
	if !ok && len(r.guestMarkers) >= maxGuestMarkers {
		oldestKey, oldest := "", time.Time{}
		for k, v := range r.guestMarkers {
			if oldestKey == "" || v.Before(oldest) {
				oldestKey, oldest = k, v
			}
		}
		delete(r.guestMarkers, oldestKey)
	}
	if r.guestMarkers == nil {
		r.guestMarkers = make(map[string]time.Time)
	}
	r.guestMarkers[key] = at
	return at
}

package daemon

import "github.com/livechat/livechat/rooms"

// updateRooms applies u to the session's membership in each of its rooms
// and returns everyone who shares a room with it, once each.
func (s *Session) updateRooms(u rooms.MemberUpdate) []*Session {
	s.mu.Lock()
	joined := s.rooms()
	s.mu.Unlock()
	return dedupe(joined, func(r *rooms.Room) []rooms.Client { return r.Update(s, u) })
}

// dedupe gathers the clients each room returns into one list without
// repeats.
func dedupe(joined []*rooms.Room, each func(*rooms.Room) []rooms.Client) []*Session {
	seen := make(map[rooms.Client]struct{})
	var out []*Session
	for _, r := range joined {
		for _, c := range each(r) {
			if _, dup := seen[c]; dup {
				continue
			}
			seen[c] = struct{}{}
			if peer, ok := c.(*Session); ok {
				out = append(out, peer)
			}
		}
	}
	return out
}

// notify sends e to each peer that wants it (want nil: all), encoded once
// per distinct rendering.
func notify(peers []*Session, e *rooms.Event, want func(*Session) bool) {
	rs := rooms.NewRenderings(e)
	for _, p := range peers {
		if want == nil || want(p) {
			p.Send(rs.For(p.Features()))
		}
	}
}

// wantsCap returns a filter for peers that negotiated c.
func wantsCap(c capSet) func(*Session) bool {
	return func(p *Session) bool { return p.hasCap(c) }
}

// event builds an event with the session as its source.
func (s *Session) event(command string, params ...string) *rooms.Event {
	return &rooms.Event{At: rooms.Now(), Source: s.prefix(), Account: s.Account(), Command: command, Params: params}
}

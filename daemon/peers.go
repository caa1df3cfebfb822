package daemon

import "github.com/livechat/livechat/rooms"

// updateRooms applies u to the session's membership in each of its rooms
// and returns everyone who shares a room with it, once each.
func (s *Session) updateRooms(u rooms.MemberUpdate) []rooms.Client {
	s.mu.Lock()
	joined := s.rooms()
	s.mu.Unlock()
	return dedupe(joined, func(r *rooms.Room) []rooms.Client { return r.Update(s, u) })
}

// dedupe gathers the clients each room returns into one list without
// repeats: sessions of this node, and in a cluster proxies of others'.
func dedupe(joined []*rooms.Room, each func(*rooms.Room) []rooms.Client) []rooms.Client {
	seen := make(map[rooms.Client]struct{})
	var out []rooms.Client
	for _, r := range joined {
		for _, c := range each(r) {
			if _, dup := seen[c]; dup {
				continue
			}
			seen[c] = struct{}{}
			out = append(out, c)
		}
	}
	return out
}

// notify sends e to each peer that wants it (want nil: all), encoded once
// per distinct rendering.
func notify(peers []rooms.Client, e *rooms.Event, want func(rooms.Client) bool) {
	rs := rooms.NewRenderings(e)
	for _, p := range peers {
		if want == nil || want(p) {
			p.Send(rs.For(p.Features()))
		}
	}
}

// capsOf returns what a peer negotiated: a session's capabilities, or
// those a proxy of another node's client carries.
func capsOf(c rooms.Client) capSet {
	switch p := c.(type) {
	case *Session:
		return capSet(p.caps.Load())
	case interface{ Caps() uint32 }:
		return capSet(p.Caps())
	}
	return 0
}

// wantsCap returns a filter for peers that negotiated c.
func wantsCap(c capSet) func(rooms.Client) bool {
	return func(p rooms.Client) bool { return capsOf(p)&c != 0 }
}

// event builds an event with the session as its source.
func (s *Session) event(command string, params ...string) *rooms.Event {
	return &rooms.Event{At: rooms.Now(), Source: s.prefix(), Account: s.Account(), Command: command, Params: params}
}

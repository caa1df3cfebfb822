package daemon

import "github.com/livechat/livechat/rooms"

// joinedRooms is the rooms a session is in, by folded name, guarded by
// Session.mu. Most connections are in a few rooms and limits.max_joined_rooms
// bounds the rest, so a slice searched in order does: it costs 24 bytes a
// room, where a map cost ~250 bytes for the first (heap profile at 10,000
// idle connections, one room each).
type joinedRooms []joinedRoom

type joinedRoom struct {
	folded string
	room   *rooms.Room
}

// get returns the room called folded, or nil.
func (j joinedRooms) get(folded string) *rooms.Room {
	for _, e := range j {
		if e.folded == folded {
			return e.room
		}
	}
	return nil
}

// put adds or replaces the room called folded.
func (j *joinedRooms) put(folded string, r *rooms.Room) {
	for i := range *j {
		if (*j)[i].folded == folded {
			(*j)[i].room = r
			return
		}
	}
	*j = append(*j, joinedRoom{folded, r})
}

// remove takes the room called folded out, if it is r (any room when r is
// nil), and returns the room it took out, or nil.
func (j *joinedRooms) remove(folded string, r *rooms.Room) *rooms.Room {
	for i, e := range *j {
		if e.folded == folded && (r == nil || e.room == r) {
			last := len(*j) - 1
			(*j)[i] = (*j)[last]
			(*j)[last] = joinedRoom{}
			*j = (*j)[:last]
			if last == 0 {
				*j = nil // let the array go: most sessions leave all at once
			}
			return e.room
		}
	}
	return nil
}

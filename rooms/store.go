package rooms

import "time"

// Saved is what a claimed room keeps across restarts.
type Saved struct {
	Name    string // display name
	Owner   string // the account that claimed it
	Created time.Time
	Topic   string
	TopicBy string
	TopicAt time.Time
	Flags   string // argument-less modes, e.g. "nt"
	Key     string
	Limit   int
	Forward string `json:",omitempty"` // +f's room
	Bans    []ListEntry
	Excepts []ListEntry
	Invex   []ListEntry `json:",omitempty"` // +I
}

// Store keeps claimed rooms, and with a history Log every room that has
// history, so that rooms come back after a restart. The registry loads a room's saved state when
// it creates the room, and the room saves it whenever it changes; both
// happen on room goroutines, so implementations must be safe for
// concurrent use. Rooms that were never claimed are never stored.
type Store interface {
	Load(folded string) (Saved, bool, error)
	Save(folded string, s Saved) error
	Delete(folded string) error
	// List returns every saved room by folded name.
	List() (map[string]Saved, error)
}

// saved captures the room's state for its store.
func (r *Room) saved() Saved {
	return Saved{
		Name: r.name, Owner: r.owner, Created: r.created,
		Topic: r.topic.text, TopicBy: r.topic.setBy, TopicAt: r.topic.setAt,
		Flags: r.modes.flags(), Key: r.modes.key, Limit: r.modes.limit, Forward: r.modes.forward,
		Bans: r.modes.bans, Excepts: r.modes.excepts, Invex: r.modes.invex,
	}
}

// restore applies saved state to a room being created.
func (r *Room) restore(s Saved) {
	r.owner = s.Owner
	if s.Name != "" {
		r.name = s.Name
	}
	if !s.Created.IsZero() {
		r.created = s.Created
	}
	r.topic = topic{text: s.Topic, setBy: s.TopicBy, setAt: s.TopicAt}
	if s.Topic != "" {
		snap := r.topic
		r.topicSnap.Store(&snap)
	}
	r.modes.setFlags(s.Flags)
	r.secretSnap.Store(r.modes.secret)
	r.modes.key, r.modes.limit, r.modes.forward = s.Key, s.Limit, s.Forward
	r.modes.bans, r.modes.excepts, r.modes.invex = s.Bans, s.Excepts, s.Invex
}

// persist saves a claimed room after a change. A failure is reported
// through the hooks; the room goes on with its state in memory.
func (r *Room) persist() {
	if r.opts.Store == nil || r.owner == "" && r.opts.Log == nil {
		return
	}
	if err := r.opts.Store.Save(r.folded, r.saved()); err != nil {
		r.opts.Hooks.storeFailed(r.name, err)
	}
}

package rooms

import (
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/livechat/livechat/protocol"
)

// Options configure a Registry and its rooms. rooms imports no config
// package; the daemon fills this in.
type Options struct {
	ServerName    string        // source of the numerics rooms send
	MaxRooms      int           // rooms existing at once
	MaxMembers    int           // members of one room
	HistorySize   int           // messages kept per room
	HistoryReplay int           // of those, replayed to a joiner
	IdleTTL       time.Duration // an empty room with history lives this long
	IDs           *IDs          // message ids; nil makes a fresh generator
	Store         Store         // claimed rooms; nil keeps none
	// Log keeps history beyond the ring: rooms append every event that
	// belongs in history, and queries the ring cannot answer go to it. nil
	// keeps history in the ring only.
	Log Log
	// SyncAlways makes every event durable in Log before any member
	// receives it (history.sync: always).
	SyncAlways bool
	Hooks      Hooks
	Now        func() time.Time // nil means time.Now
	// Cluster runs rooms across nodes (see remote.go); nil: this node
	// runs every room.
	Cluster Cluster
}

func (o *Options) now() time.Time {
	if o.Now != nil {
		return o.Now()
	}
	return Now()
}

// Hooks let the daemon log and count what rooms do. Every field may be nil.
// They are called from room goroutines and must be safe for concurrent use.
type Hooks struct {
	Created   func(room string)
	Dropped   func(room string)
	Panicked  func(room, request string, value any, stack []byte)
	Delivered func(recipients int, fanout time.Duration) // one accepted message
	// StoreFailed reports a claimed room that could not be loaded or saved.
	StoreFailed func(room string, err error)
	// BeforeRequest runs in the actor before each request; tests use it to
	// inject a panic.
	BeforeRequest func(room, request string)
}

func (h *Hooks) panicked(room, req string, v any, stack []byte) {
	if h.Panicked != nil {
		h.Panicked(room, req, v, stack)
	}
}

func (h *Hooks) storeFailed(room string, err error) {
	if h.StoreFailed != nil {
		h.StoreFailed(room, err)
	}
}

func (h *Hooks) delivered(n int, d time.Duration) {
	if h.Delivered != nil {
		h.Delivered(n, d)
	}
}

// Registry maps folded room names to rooms. It creates rooms on demand,
// and is the only way a room leaves: under its lock, so that a room is
// never dropped while a JOIN is on its way to it. Safe for concurrent use.
type Registry struct {
	opts Options

	mu    sync.Mutex
	rooms map[string]*Room
	wg    sync.WaitGroup
	// byName is every room sorted by name, shared by all LISTs until a
	// room is created or dropped (nil then). Without it each LIST copied
	// and sorted the whole registry under mu, and many slow LISTs held a
	// copy each for as long as their readers took.
	byName []*Room
	gen    uint64 // rooms created and dropped, so ByName knows its sort is current
	live   int    // rooms with an actor; the others are dormant
	// stubs are the rooms other nodes of a cluster run, that this node's
	// clients are in or asked about, by folded name.
	stubs map[string]*Room
}

// NewRegistry returns an empty registry.
func NewRegistry(opts Options) *Registry {
	if opts.MaxRooms <= 0 {
		opts.MaxRooms = 1
	}
	if opts.MaxMembers <= 0 {
		opts.MaxMembers = 1
	}
	if opts.IDs == nil {
		opts.IDs = NewIDs()
	}
	return &Registry{opts: opts, rooms: make(map[string]*Room)}
}

// SetLimits changes the room and member limits for rooms from now on
// (config reload).
func (g *Registry) SetLimits(maxRooms, maxMembers int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.opts.MaxRooms, g.opts.MaxMembers = maxRooms, maxMembers
}

// Join adds m to the room called name (a valid display name, see
// protocol.RoomName), creating the room if it does not exist yet. The
// joiner sees the JOIN, the topic, the member list and the replayed history.
// key is the room key the joiner gave, if any.
func (g *Registry) Join(m Member, name, key string) (*Room, error) {
	if g.opts.Cluster != nil {
		return g.joinCluster(m, name, key)
	}
	return g.joinLocal(m, name, key)
}

func (g *Registry) joinLocal(m Member, name, key string) (*Room, error) {
	folded := protocol.FoldRoom(name)
	g.mu.Lock()
	r := g.rooms[folded]
	if r == nil || r.dormant() {
		if g.live >= g.opts.MaxRooms {
			g.mu.Unlock()
			return nil, ErrTooManyRooms
		}
		if r != nil {
			name = r.name
		}
		r = g.newRoomLocked(name, folded)
	}
	r.pending.Add(1)
	g.mu.Unlock()

	if err := r.join(m, key); err != nil {
		return nil, err
	}
	return r, nil
}

func (g *Registry) newRoomLocked(name, folded string) *Room {
	opts := g.opts // rooms keep the limits they were created with
	r := &Room{
		name:    name,
		folded:  folded,
		reg:     g,
		opts:    &opts,
		mailbox: make(chan request, 64),
		done:    make(chan struct{}),
		index:   make(map[Client]int),
		created: opts.now(),
		history: NewHistory(opts.HistorySize),
		modes:   modes{topicLock: true, noExternal: true},
	}
	if opts.Store != nil {
		saved, ok, err := opts.Store.Load(folded)
		if err != nil {
			opts.Hooks.storeFailed(name, err)
		}
		if ok {
			r.restore(saved)
			r.remembered = true
		}
	}
	g.rooms[folded] = r
	g.byName, g.gen = nil, g.gen+1
	g.live++
	g.wg.Add(1)
	go func() {
		defer g.wg.Done()
		r.run()
	}()
	if h := g.opts.Hooks.Created; h != nil {
		h(name)
	}
	return r
}

// Get returns the room called name, or nil. A dormant room wakes up (its
// actor starts, its state and recent history load) unless the live rooms
// are at their limit; then it is nil like a room that does not exist.
func (g *Registry) Get(name string) *Room {
	if g.opts.Cluster != nil {
		return g.getCluster(name)
	}
	return g.getLocal(name)
}

func (g *Registry) getLocal(name string) *Room {
	folded := protocol.FoldRoom(name)
	g.mu.Lock()
	defer g.mu.Unlock()
	r := g.rooms[folded]
	if r != nil && r.dormant() {
		if g.live >= g.opts.MaxRooms {
			return nil
		}
		r = g.newRoomLocked(r.name, folded)
	}
	return r
}

// Len returns the number of live rooms (with an actor).
func (g *Registry) Len() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.live
}

// Dormant returns the number of rooms remembered for their history or
// their owner, without an actor until someone wants them.
func (g *Registry) Dormant() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.rooms) - g.live
}

// ByName returns every room sorted by name. The slice is shared and must
// not be modified; rooms dropped since it was made are still in it (see
// Gone). Read each room's Info as it is needed, so that a long listing
// shows what is current when it gets there and costs no copy.
func (g *Registry) ByName() []*Room {
	g.mu.Lock()
	if g.byName != nil {
		defer g.mu.Unlock()
		return g.byName
	}
	out := make([]*Room, 0, len(g.rooms))
	for _, r := range g.rooms {
		out = append(out, r)
	}
	gen := g.gen
	g.mu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i].name < out[j].name })
	g.mu.Lock()
	if g.gen == gen {
		g.byName = out // nothing was created or dropped meanwhile
	}
	g.mu.Unlock()
	return out
}

// tryDrop removes r if it is still empty and no JOIN is on its way. It is
// called from r's own actor, so r's member count cannot change meanwhile.
func (g *Registry) tryDrop(r *Room) {
	g.mu.Lock()
	if r.pending.Load() != 0 || len(r.members) != 0 || g.rooms[r.folded] != r {
		g.mu.Unlock()
		return
	}
	delete(g.rooms, r.folded)
	g.live--
	if g.opts.Log != nil && r.history.worthKeeping() || r.owner != "" && g.opts.Store != nil {
		g.addDormantLocked(r.asDormant())
	}
	g.byName, g.gen = nil, g.gen+1
	close(r.done)
	g.mu.Unlock()
	if r.idle != nil {
		r.idle.Stop()
	}
	if g.opts.Cluster != nil {
		g.opts.Cluster.Release(r.folded)
	}
	if h := g.opts.Hooks.Dropped; h != nil {
		h(r.name)
	}
}

// Close stops every room and waits for their goroutines.
func (g *Registry) Close() {
	g.mu.Lock()
	for k, r := range g.rooms {
		delete(g.rooms, k)
		if !r.dormant() {
			close(r.done)
		}
	}
	g.live = 0
	g.byName, g.gen = nil, g.gen+1
	g.mu.Unlock()
	g.wg.Wait()
}

// Restore brings back, dormant, every room the store saved and every room
// the log has history for, so that LIST and TOPIC show them after a
// restart and a JOIN replays their history. Call it once, before serving.
func (g *Registry) Restore() error {
	var saved map[string]Saved
	if g.opts.Store != nil {
		var err error
		if saved, err = g.opts.Store.List(); err != nil {
			return err
		}
	}
	var targets []TargetInfo
	if g.opts.Log != nil {
		var err error
		if targets, err = g.opts.Log.Targets("#"); err != nil {
			return err
		}
	}
	last := make(map[string]time.Time, len(targets))
	for _, t := range targets {
		last[t.Name] = t.Last
		if _, ok := saved[t.Name]; !ok {
			if saved == nil {
				saved = make(map[string]Saved)
			}
			saved[t.Name] = Saved{Name: t.Name}
		}
	}
	// The most recently active first, so that the bound keeps them.
	order := make([]string, 0, len(saved))
	for folded := range saved {
		order = append(order, folded)
	}
	sort.Slice(order, func(i, j int) bool { return last[order[i]].After(last[order[j]]) })
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, folded := range order {
		if g.rooms[folded] == nil {
			r := g.dormantRoom(folded, saved[folded])
			r.lastActive = last[folded]
			g.addDormantLocked(r)
		}
	}
	g.byName, g.gen = nil, g.gen+1
	return nil
}

// addDormantLocked remembers r without an actor. Dormant rooms are bounded
// like live ones, by max_rooms: beyond it the least recently active room
// nobody owns leaves the list (its history stays in the log until
// retention, and a JOIN brings it back), so that rooms made to be
// abandoned cannot grow the registry without end. Called with mu held.
func (g *Registry) addDormantLocked(r *Room) {
	if len(g.rooms)-g.live >= g.opts.MaxRooms {
		var oldest *Room
		for _, d := range g.rooms {
			if d.dormant() && d.owner == "" && (oldest == nil || d.lastActive.Before(oldest.lastActive)) {
				oldest = d
			}
		}
		if oldest != nil && (r.owner != "" || !r.lastActive.Before(oldest.lastActive)) {
			delete(g.rooms, oldest.folded)
		} else if r.owner == "" {
			return // older than every room remembered: not listed
		}
	}
	g.rooms[r.folded] = r
}

// Sweep forgets dormant rooms whose history retention removed and that
// nobody owns, and their saved state.
func (g *Registry) Sweep() error {
	if g.opts.Log == nil {
		return nil
	}
	targets, err := g.opts.Log.Targets("#")
	if err != nil {
		return err
	}
	has := make(map[string]bool, len(targets))
	for _, t := range targets {
		has[t.Name] = true
	}
	var gone []string
	g.mu.Lock()
	for folded, r := range g.rooms {
		if r.dormant() && r.owner == "" && !has[folded] {
			delete(g.rooms, folded)
			gone = append(gone, folded)
		}
	}
	if len(gone) > 0 {
		g.byName, g.gen = nil, g.gen+1
	}
	g.mu.Unlock()
	for _, folded := range gone {
		if g.opts.Store != nil {
			if err := g.opts.Store.Delete(folded); err != nil {
				return err
			}
		}
	}
	return nil
}

// dormantRoom makes a room without an actor from its saved state: enough
// for LIST and to wake it.
func (g *Registry) dormantRoom(folded string, s Saved) *Room {
	r := &Room{name: s.Name, folded: folded, reg: g, opts: &g.opts, done: make(chan struct{}), created: s.Created, owner: s.Owner}
	if r.name == "" {
		r.name = folded
	}
	if s.Topic != "" {
		r.topicSnap.Store(&topic{text: s.Topic, setBy: s.TopicBy, setAt: s.TopicAt})
	}
	r.secretSnap.Store(strings.Contains(s.Flags, "s"))
	return r
}

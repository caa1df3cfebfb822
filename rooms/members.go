package rooms

import (
	"slices"

	"github.com/livechat/livechat/protocol"
)

func (r *Room) doJoin(m Member, key string) error {
	if _, ok := r.index[m.Client]; ok {
		return ErrAlreadyMember
	}
	if m.Twin != nil {
		i, ok := r.index[m.Twin]
		if !ok {
			return ErrNotMember // the user left meanwhile: not a join of its own
		}
		r.attach(r.members[i], m)
		return nil
	}
	for _, d := range m.Devices {
		if i, ok := r.index[d]; ok {
			r.attach(r.members[i], m) // two devices' JOINs crossed: one member
			return nil
		}
	}
	mem := newMember(m)
	owner := r.owner != "" && protocol.FoldNick(m.Account) == protocol.FoldNick(r.owner)
	folded := protocol.FoldNick(m.Nick)
	_, invited := r.invites[folded]
	if !owner {
		if err := r.refuse(mem, key, invited); err != nil {
			return err
		}
	}
	if len(r.members) >= r.opts.MaxMembers {
		return ErrRoomFull
	}
	delete(r.invites, folded)
	// The owner is operator; in an unclaimed room, so is whoever finds it
	// empty (a new room, or one kept only for its history).
	if owner || r.owner == "" && len(r.members) == 0 {
		mem.role = roleOp
	}
	r.index[m.Client] = len(r.members)
	r.members = append(r.members, mem)
	r.nMembers.Store(int32(len(r.members)))
	r.memberAdded(mem)

	// One array for both forms: the room keeps this event in its history.
	ext := []string{r.name, accountOrStar(m.Account), m.Realname}
	e := r.event(mem, "JOIN", ext[:1:1]...)
	e.ExtParams = ext
	r.record(e)
	r.broadcast(e, m.Client, true, false)
	r.showRoom(m.Client, m.Nick, m.AfterJoin)
	return nil
}

// showRoom sends a joiner, after its JOIN, what it needs to show the
// room: the read marker, the topic, the member list and the last messages.
func (r *Room) showRoom(c Client, nick string, afterJoin []byte) {
	if afterJoin != nil {
		c.Reply(afterJoin)
	}
	if r.topic.text != "" {
		r.sendTopic(c, nick)
	}
	if c.Features()&FeatNoImplicitNames == 0 {
		r.doNames(c, nick)
	}
	r.replay(c)
}

// attach adds j's client to mem as another device of the same user: it
// sees its JOIN (not recorded: nobody else sees one) and the room, and
// from then on everything mem is sent.
func (r *Room) attach(mem *member, j Member) {
	mem.devices = append(mem.devices, j.Client)
	r.index[j.Client] = r.index[mem.Client]
	e := r.event(mem, "JOIN", r.name)
	e.ExtParams = []string{r.name, accountOrStar(mem.Account), mem.Realname}
	j.Client.Reply(e.Render(j.Client.Features()))
	r.showRoom(j.Client, mem.Nick, j.AfterJoin)
}

// detach takes one device c off m, which has others: the user stays in
// the room on them, so nobody hears of it.
func (r *Room) detach(m *member, c Client) {
	c.Flush()
	delete(r.index, c)
	if c == m.Client {
		// Without a cluster only: mirrors know a member by its Client
		// (the daemon attaches no devices when clustered).
		m.Client = m.devices[0]
		m.devices = m.devices[1:]
		return
	}
	m.devices = slices.DeleteFunc(m.devices, func(d Client) bool { return d == c })
}

// device returns the i-th connection m is served on, Member.Client first;
// there are 1+len(m.devices). Loops over every member's devices use it
// rather than a slice of them, which would be an allocation per member.
func (m *member) device(i int) Client {
	if i == 0 {
		return m.Client
	}
	return m.devices[i-1]
}

// refuse says why a joiner who is not the owner may not join, or nil.
// Those refused by +i, +l or +R go to the +f room if there is one (as in
// Solanum; not the banned, nor a wrong key, which is a typo to fix).
func (r *Room) refuse(mem *member, key string, invited bool) error {
	var err error
	switch {
	case r.banned(mem) && !invited:
		return ErrBanned
	case r.modes.inviteOnly && !invited && !listed(r.modes.invex, mem) && !listed(r.modes.excepts, mem):
		err = ErrInviteOnly
	case r.modes.key != "" && key != r.modes.key:
		return ErrBadKey
	case r.modes.limit > 0 && len(r.members) >= r.modes.limit:
		err = ErrRoomFull
	case r.modes.regJoin && mem.Account == "" && !invited && !listed(r.modes.excepts, mem):
		err = ErrRegOnly
	}
	if err != nil && r.modes.forward != "" {
		return &ForwardError{Err: err, Target: r.modes.forward}
	}
	return err
}

// doRejoin adds a member that was in the room when the room's previous home
// node was lost: it was let in then, so nothing is checked again, and its
// peers already know it, so nobody is told. It keeps the role it had, as
// its node's mirror of the room knew it; the owner is operator anyway.
func (r *Room) doRejoin(m Member, had role) error {
	if _, ok := r.index[m.Client]; ok {
		return nil
	}
	if len(r.members) >= r.opts.MaxMembers {
		return ErrRoomFull
	}
	mem := newMember(m)
	mem.role = had
	if r.owner != "" && protocol.FoldNick(m.Account) == protocol.FoldNick(r.owner) {
		mem.role |= roleOp
	}
	r.index[m.Client] = len(r.members)
	r.members = append(r.members, mem)
	r.nMembers.Store(int32(len(r.members)))
	r.memberAdded(mem)
	return nil
}

func accountOrStar(account string) string {
	if account == "" {
		return "*"
	}
	return account
}

// replay sends a joiner the last messages: inside a chathistory batch
// with their original times for clients that take both, plain otherwise.
// A client that negotiated draft/chathistory gets none: it asks for what
// it wants (CHATHISTORY LATEST after joining), and an unasked-for batch
// would arrive as a second, unmatched answer (Kiwi IRC logs an error).
func (r *Room) replay(c Client) {
	f := c.Features()
	if f&FeatChathistory != 0 {
		return
	}
	events, _ := r.history.Query(Query{Sel: SelLatest, Limit: r.opts.HistoryReplay})
	if len(events) == 0 {
		return
	}
	if f&(FeatBatch|FeatTime) != FeatBatch|FeatTime {
		for _, e := range events {
			c.Reply(e.Render(f))
		}
		return
	}
	id := r.opts.IDs.Next()
	c.Reply(encode(protocol.Message{Source: r.opts.ServerName, Command: "BATCH", Params: []string{"+" + id, "chathistory", r.name}}))
	ref := protocol.Tag{Key: "batch", Value: id}
	for _, e := range events {
		c.Reply(e.Render(f, ref))
	}
	c.Reply(encode(protocol.Message{Source: r.opts.ServerName, Command: "BATCH", Params: []string{"-" + id}}))
}

// remove takes c out of the member list, keeping it dense for fan-out,
// and tells the other nodes' mirrors.
func (r *Room) remove(c Client) *member {
	m := r.removeQuietly(c)
	if m != nil && r.opts.Cluster != nil {
		ref := r.opts.Cluster.Ref(m.Client)
		r.toMirrors(mirrorFrame{Room: r.folded, Del: []peerKey{{ref.Node, ref.ID}}}, "")
	}
	return m
}

// removeQuietly is remove without telling the mirrors: for a node that
// was lost, every node forgets its members by itself (see NodeLost).
func (r *Room) removeQuietly(c Client) *member {
	i, ok := r.index[c]
	if !ok {
		return nil
	}
	m := r.members[i]
	for i := range 1 + len(m.devices) {
		d := m.device(i)
		d.Flush() // it leaves before the room's next flush
		delete(r.index, d)
	}
	last := len(r.members) - 1
	if i != last {
		moved := r.members[last]
		r.members[i] = moved
		r.index[moved.Client] = i
		for _, d := range moved.devices {
			r.index[d] = i
		}
	}
	r.members[last] = nil
	r.members = r.members[:last]
	r.nMembers.Store(int32(len(r.members)))
	r.memberRemoved(m)
	return m
}

func (r *Room) doPart(c Client, reason string) error {
	m := r.memberOf(c)
	if m == nil {
		return ErrNotMember
	}
	params := []string{r.name}
	if reason != "" && r.muted(m) == "" {
		params = append(params, reason)
	}
	e := r.event(m, "PART", params...)
	r.record(e)
	r.broadcast(e, c, true, false)
	r.remove(c)
	for i := range 1 + len(m.devices) {
		d := m.device(i)
		if d != c {
			d.Removed(r) // the user left from another device
		}
	}
	return nil
}

func (r *Room) doLeave(c Client, quit *Event) leaveAnswer {
	m := r.memberOf(c)
	if m == nil {
		return leaveAnswer{}
	}
	if len(m.devices) > 0 {
		r.detach(m, c)
		return leaveAnswer{}
	}
	muted := r.muted(m) != ""
	if quit != nil {
		if muted && len(quit.Params) > 0 {
			kept := *quit // words a muted member may not leave in this room
			kept.Params = []string{"Quit"}
			quit = &kept
		}
		r.record(quit)
	}
	r.remove(c)
	return leaveAnswer{peers: r.clients(nil), muted: muted}
}

func (r *Room) doUpdate(c Client, u MemberUpdate) []Client {
	m := r.memberOf(c)
	if m == nil {
		return nil
	}
	if u.Nick != nil || u.Host != nil {
		if u.Event != nil {
			r.record(u.Event)
		}
		if u.Nick != nil {
			m.Nick = *u.Nick
		}
		if u.Host != nil {
			m.Host = *u.Host
		}
		m.prefix = m.Nick + "!" + m.User + "@" + m.Host
		r.memberChanged(m)
	}
	if u.Account != nil {
		m.Account, m.Origin = *u.Account, u.Origin
	}
	if u.Realname != nil {
		m.Realname = *u.Realname
	}
	return r.clients(c)
}

// clients lists the members other than except.
func (r *Room) clients(except Client) []Client {
	out := make([]Client, 0, len(r.members))
	for _, m := range r.members {
		if m.Client != except {
			out = append(out, m.Client)
		}
		for _, d := range m.devices {
			if d != except {
				out = append(out, d)
			}
		}
	}
	return out
}

package rooms

import (
	"slices"
	"strconv"
	"strings"

	"github.com/livechat/livechat/protocol"
)

// isOp reports whether c is an operator of the room.
func (r *Room) isOp(c Client) bool {
	m := r.memberOf(c)
	return m != nil && m.role&roleOp != 0
}

// memberByNick finds a member by nick, case-insensitively.
func (r *Room) memberByNick(nick string) *member {
	folded := protocol.FoldNick(nick)
	for _, m := range r.members {
		if protocol.FoldNick(m.Nick) == folded {
			return m
		}
	}
	return nil
}

// doMode shows or changes the room's modes for c; oper says c is a server
// operator (see ListEntry.ByOper).
func (r *Room) doMode(c Client, nick string, oper bool, changes []ModeChange) {
	if len(changes) == 0 {
		r.numeric(c, nick, protocol.RPL_CHANNELMODEIS, append([]string{r.name}, r.modeArgs(r.memberOf(c) != nil)...)...)
		r.numeric(c, nick, protocol.RPL_CREATIONTIME, r.name, strconv.FormatInt(r.created.Unix(), 10))
		return
	}
	actor := r.memberOf(c)
	applied, args, public := "", []string(nil), []string(nil)
	sign := byte(0)
	record := func(ch ModeChange, arg, shown string) {
		s := byte('-')
		if ch.Add {
			s = '+'
		}
		if s != sign {
			applied += string(s)
			sign = s
		}
		applied += string(ch.Mode)
		if arg != "" {
			args = append(args, arg)
			public = append(public, shown)
		}
	}
	denied := false
	for _, ch := range changes {
		if isList(ch.Mode) && ch.Arg == "" {
			r.sendList(c, nick, ch.Mode, oper)
			continue
		}
		if actor == nil || actor.role&roleOp == 0 {
			if !denied {
				r.numeric(c, nick, protocol.ERR_CHANOPRIVSNEEDED, r.name, "You're not a room operator")
				denied = true
			}
			continue
		}
		if arg, shown, ok := r.applyMode(c, nick, actor, oper, ch); ok {
			record(ch, arg, shown)
		}
	}
	if applied == "" {
		return
	}
	e := r.event(actor, "MODE", append([]string{r.name, applied}, args...)...)
	if slices.Equal(args, public) {
		r.record(e)
		r.broadcast(e, c, true, false)
	} else {
		// Only the operator who set a hidden mask sees it set; history
		// keeps what everyone else saw.
		shown := r.event(actor, "MODE", append([]string{r.name, applied}, public...)...)
		r.record(shown)
		r.broadcast(shown, c, false, false)
		rs := NewRenderings(e)
		c.Reply(rs.For(c.Features()))
	}
	r.persist()
}

// applyMode makes one change an operator asked for and returns the
// argument to show in the MODE line to the actor and to everyone else (they
// differ for a server operator's hidden mask), or ok=false if nothing changed.
func (r *Room) applyMode(c Client, nick string, actor *member, oper bool, ch ModeChange) (arg, shown string, ok bool) {
	if isList(ch.Mode) {
		list := r.modes.list(ch.Mode)
		if ch.Add && len(*list) >= maxListEntries {
			r.numeric(c, nick, protocol.ERR_BANLISTFULL, r.name, string(ch.Mode), "The list is full ("+strconv.Itoa(maxListEntries)+" entries); remove some first")
			return "", "", false
		}
		e, ok := editList(list, ListEntry{Mask: protocol.CompleteMask(ch.Arg), SetBy: actor.Nick, SetAt: r.opts.now(), ByOper: oper}, ch.Add)
		return e.Mask, e.shownMask(false), ok
	}
	arg, ok = r.applySetting(c, nick, ch)
	return arg, arg, ok
}

// applySetting makes a change other than to a list (see applyMode).
func (r *Room) applySetting(c Client, nick string, ch ModeChange) (string, bool) {
	m := &r.modes
	switch ch.Mode {
	case 'o', 'v':
		target := r.memberByNick(ch.Arg)
		if target == nil {
			r.numeric(c, nick, protocol.ERR_USERNOTINCHANNEL, ch.Arg, r.name, "They aren't in the room")
			return "", false
		}
		bit := roleVoice
		if ch.Mode == 'o' {
			bit = roleOp
		}
		if (target.role&bit != 0) == ch.Add {
			return "", false
		}
		target.role ^= bit
		r.memberChanged(target)
		return target.Nick, true
	case 'k':
		if !ch.Add {
			if m.key == "" {
				return "", false
			}
			m.key = ""
			return "*", true
		}
		if ch.Arg == "" || strings.ContainsAny(ch.Arg, " ,:") || len(ch.Arg) > 32 {
			r.numeric(c, nick, protocol.ERR_INVALIDMODEPARAM, r.name, "k", "*", "Invalid key: 1 to 32 characters, no spaces, commas or colons")
			return "", false
		}
		m.key = ch.Arg
		return ch.Arg, true
	case 'l':
		if !ch.Add {
			if m.limit == 0 {
				return "", false
			}
			m.limit = 0
			return "", true
		}
		n, err := strconv.Atoi(ch.Arg)
		if err != nil || n < 1 {
			r.numeric(c, nick, protocol.ERR_INVALIDMODEPARAM, r.name, "l", paramOrStar(ch.Arg), "Invalid limit: a positive number")
			return "", false
		}
		m.limit = n
		return ch.Arg, true
	case 'f':
		// The daemon checked the name and that the setter runs the target.
		if !ch.Add {
			if m.forward == "" {
				return "", false
			}
			m.forward = ""
			return "", true
		}
		if protocol.FoldRoom(ch.Arg) == r.folded || m.forward == ch.Arg {
			return "", false
		}
		m.forward = ch.Arg
		return ch.Arg, true
	}
	flag := map[byte]*bool{'i': &m.inviteOnly, 'm': &m.moderated, 'n': &m.noExternal, 's': &m.secret, 't': &m.topicLock,
		'C': &m.noCTCP, 'M': &m.regSpeak, 'R': &m.regJoin}[ch.Mode]
	if *flag == ch.Add {
		return "", false
	}
	*flag = ch.Add
	r.secretSnap.Store(m.secret)
	return "", true
}

// paramOrStar echoes a client's value as a middle parameter, or "*" when
// it could not be one (empty, or with spaces).
func paramOrStar(v string) string {
	if v == "" || strings.ContainsAny(v, " :") {
		return "*"
	}
	return v
}

// editList adds entry e or removes the entry with its mask, and returns
// the entry added or removed; ok is false if the list did not change.
// Server operators' entries stand apart (ByOper): a room operator can
// neither lift one nor learn of it by adding the same mask, and a server
// operator adding a mask a room operator set adds their own, which also
// matches real addresses. A server operator removing a mask removes their
// own entry first.
func editList(list *[]ListEntry, e ListEntry, add bool) (ListEntry, bool) {
	found := -1
	for i, old := range *list {
		if !strings.EqualFold(old.Mask, e.Mask) {
			continue
		}
		if old.ByOper == e.ByOper {
			found = i
			break
		}
		if !add && e.ByOper && found < 0 {
			found = i
		}
	}
	switch {
	case add && found < 0:
		*list = append(*list, e)
		return e, true
	case !add && found >= 0:
		old := (*list)[found]
		*list = append((*list)[:found], (*list)[found+1:]...)
		return old, true
	}
	return ListEntry{}, false
}

// isList reports whether mode is a list mode: bans, ban exceptions or
// invite exceptions.
func isList(mode byte) bool { return mode == 'b' || mode == 'e' || mode == 'I' }

// list returns the list a list mode edits.
func (m *modes) list(mode byte) *[]ListEntry {
	switch mode {
	case 'e':
		return &m.excepts
	case 'I':
		return &m.invex
	}
	return &m.bans
}

// ListNumerics returns a list mode's item and end numerics and the end's text.
func ListNumerics(mode byte) (item, end, text string) {
	switch mode {
	case 'e':
		return protocol.RPL_EXCEPTLIST, protocol.RPL_ENDOFEXCEPTLIST, "End of room exception list"
	case 'I':
		return protocol.RPL_INVEXLIST, protocol.RPL_ENDOFINVEXLIST, "End of room invite exception list"
	}
	return protocol.RPL_BANLIST, protocol.RPL_ENDOFBANLIST, "End of room ban list"
}

// sendList lists bans or exceptions to c; oper says c is a server operator,
// who alone sees server operators' masks (the others see hiddenMask).
func (r *Room) sendList(c Client, nick string, mode byte, oper bool) {
	item, end, text := ListNumerics(mode)
	for _, e := range *r.modes.list(mode) {
		r.numeric(c, nick, item, r.name, e.shownMask(oper), e.SetBy, strconv.FormatInt(e.SetAt.Unix(), 10))
	}
	r.numeric(c, nick, end, r.name, text)
}

func (r *Room) doKick(c Client, nick, target, reason string) {
	actor := r.memberOf(c)
	switch {
	case actor == nil:
		r.numeric(c, nick, protocol.ERR_NOTONCHANNEL, r.name, "You're not in that room")
		return
	case actor.role&roleOp == 0:
		r.numeric(c, nick, protocol.ERR_CHANOPRIVSNEEDED, r.name, "You're not a room operator")
		return
	}
	victim := r.memberByNick(target)
	if victim == nil {
		r.numeric(c, nick, protocol.ERR_USERNOTINCHANNEL, target, r.name, "They aren't in the room")
		return
	}
	if reason == "" {
		reason = actor.Nick
	}
	e := r.event(actor, "KICK", r.name, victim.Nick, reason)
	r.record(e)
	r.broadcast(e, c, true, false)
	r.remove(victim.Client)
	for i := range 1 + len(victim.devices) {
		d := victim.device(i)
		d.Removed(r)
	}
}

func (r *Room) doInvite(c Client, nick string, target Client, targetNick string) {
	actor := r.memberOf(c)
	switch {
	case actor == nil:
		r.numeric(c, nick, protocol.ERR_NOTONCHANNEL, r.name, "You're not in that room")
		return
	case r.modes.inviteOnly && actor.role&roleOp == 0:
		r.numeric(c, nick, protocol.ERR_CHANOPRIVSNEEDED, r.name, "You're not a room operator")
		return
	case r.memberOf(target) != nil:
		r.numeric(c, nick, protocol.ERR_USERONCHANNEL, targetNick, r.name, "is already in the room")
		return
	}
	if r.invites == nil {
		r.invites = make(map[string]struct{})
	}
	r.invites[protocol.FoldNick(targetNick)] = struct{}{}
	r.numeric(c, nick, protocol.RPL_INVITING, targetNick, r.name)
	e := r.event(actor, "INVITE", targetNick, r.name)
	target.Send(e.Render(target.Features()))
	rs := NewRenderings(e)
	for _, m := range r.members {
		for i := range 1 + len(m.devices) {
			d := m.device(i)
			if d != c && d.Features()&FeatInviteNotify != 0 {
				d.Send(rs.For(d.Features()))
			}
		}
	}
}

func (r *Room) doClaim(c Client, nick, account string) {
	switch {
	case account == "":
		r.numeric(c, nick, protocol.ERR_UNKNOWNERROR, "ROOM", "Log in first: only accounts can own rooms")
	case r.owner != "":
		r.numeric(c, nick, protocol.ERR_UNKNOWNERROR, "ROOM", r.name+" is already owned by "+r.owner)
	case !r.isOp(c):
		r.numeric(c, nick, protocol.ERR_CHANOPRIVSNEEDED, r.name, "Only a room operator can claim it")
	case r.opts.Store == nil:
		r.numeric(c, nick, protocol.ERR_UNKNOWNERROR, "ROOM", "This server keeps no rooms")
	default:
		r.owner = account
		if err := r.opts.Store.Save(r.folded, r.saved()); err != nil {
			r.owner = ""
			r.opts.Hooks.storeFailed(r.name, err)
			r.numeric(c, nick, protocol.ERR_UNKNOWNERROR, "ROOM", "Could not save the room; try again later")
			return
		}
		r.notice(c, nick, r.name+" is now owned by "+account+": its topic, modes and bans are kept, and you are its operator whenever you join")
	}
}

func (r *Room) doDrop(c Client, nick, account string) {
	if r.owner == "" || account == "" || protocol.FoldNick(account) != protocol.FoldNick(r.owner) {
		r.numeric(c, nick, protocol.ERR_UNKNOWNERROR, "ROOM", "Only the owner of "+r.name+" can drop it")
		return
	}
	var err error
	if r.opts.Log != nil {
		// Its history still brings it back after a restart, unowned.
		s := r.saved()
		s.Owner = ""
		err = r.opts.Store.Save(r.folded, s)
	} else {
		err = r.opts.Store.Delete(r.folded)
	}
	if err != nil {
		r.opts.Hooks.storeFailed(r.name, err)
		r.numeric(c, nick, protocol.ERR_UNKNOWNERROR, "ROOM", "Could not drop the room; try again later")
		return
	}
	r.owner = ""
	if r.opts.Log != nil {
		r.notice(c, nick, r.name+" is no longer owned; it will be forgotten when its history expires")
		return
	}
	r.notice(c, nick, r.name+" is no longer owned; it will be forgotten when it empties")
}

func (r *Room) notice(c Client, nick, text string) {
	c.Reply(encode(protocol.Message{Source: r.opts.ServerName, Command: "NOTICE", Params: []string{nick, text}}))
}

// blocksNickChange reports whether c may not change nick here: a banned
// member could otherwise shed a nick ban by renaming.
func (r *Room) blocksNickChange(c Client) bool {
	m := r.memberOf(c)
	return m != nil && m.role == 0 && r.banned(m)
}

package rooms

import (
	"strconv"
	"strings"
	"time"

	"github.com/livechat/livechat/protocol"
)

// role is what a member may do beyond speaking.
type role uint8

const (
	roleVoice role = 1 << iota // + : may speak in a moderated room
	roleOp                     // @ : may change modes, topic, kick, invite
)

// prefixes returns the member's NAMES/WHO prefix: the highest role only,
// or all of them for multi-prefix clients.
func (r role) prefixes(all bool) string {
	switch {
	case r&roleOp != 0 && r&roleVoice != 0 && all:
		return "@+"
	case r&roleOp != 0:
		return "@"
	case r&roleVoice != 0:
		return "+"
	}
	return ""
}

// maxListEntries bounds a room's ban and exception lists.
const maxListEntries = 100

// ListEntry is one ban or exception mask.
type ListEntry struct {
	Mask  string
	SetBy string
	SetAt time.Time
	// ByOper marks an entry a server operator set. Only such an entry
	// matches real addresses: were any room operator's to, banning ranges
	// and watching who can still speak would reveal a member's address.
	// Its mask is shown to, and lifted by, server operators only. Stored
	// entries without the field are ordinary ones.
	ByOper bool `json:",omitempty"`
}

// hiddenMask stands in for the mask of a server operator's entry, which
// may hold a real address, when anyone else lists or sees it set.
const hiddenMask = "<hidden>"

// shownMask is the mask of e as a viewer who is (oper) or is not a server
// operator may see it. An account mask holds no address and is shown.
func (e ListEntry) shownMask(oper bool) string {
	if e.ByOper && !oper && !strings.HasPrefix(e.Mask, "$a:") {
		return hiddenMask
	}
	return e.Mask
}

// modes are a room's channel modes.
type modes struct {
	topicLock  bool // +t: only operators set the topic
	noExternal bool // +n: only members speak
	moderated  bool // +m: only voiced members and operators speak
	inviteOnly bool // +i: only invited users join
	secret     bool // +s: members and topic hidden from non-members (the daemon's LIST, NAMES, WHO, TOPIC, WHOIS)
	regJoin    bool // +R: only logged-in users join
	regSpeak   bool // +M: only logged-in users speak, unless voiced
	noCTCP     bool // +C: no CTCP but ACTION
	key        string
	limit      int
	forward    string // +f: the room joiners refused by +i, +l or +R go to instead
	bans       []ListEntry
	excepts    []ListEntry
	invex      []ListEntry // +I: may join while +i without an invitation
}

// flags returns the mode letters set, in canonical order: that of the
// arguments in modeArgs.
func (m *modes) flags() string {
	var b strings.Builder
	for _, f := range []struct {
		on bool
		c  byte
	}{{m.forward != "", 'f'}, {m.inviteOnly, 'i'}, {m.key != "", 'k'}, {m.limit > 0, 'l'}, {m.moderated, 'm'}, {m.noExternal, 'n'}, {m.secret, 's'}, {m.topicLock, 't'},
		{m.noCTCP, 'C'}, {m.regSpeak, 'M'}, {m.regJoin, 'R'}} {
		if f.on {
			b.WriteByte(f.c)
		}
	}
	return b.String()
}

// setFlags sets the argument-less modes from letters (restoring a saved room).
func (m *modes) setFlags(letters string) {
	m.inviteOnly = strings.Contains(letters, "i")
	m.moderated = strings.Contains(letters, "m")
	m.noExternal = strings.Contains(letters, "n")
	m.topicLock = strings.Contains(letters, "t")
	m.secret = strings.Contains(letters, "s")
	m.noCTCP = strings.Contains(letters, "C")
	m.regSpeak = strings.Contains(letters, "M")
	m.regJoin = strings.Contains(letters, "R")
}

// ModeChange is one requested change of a room's modes.
type ModeChange struct {
	Add  bool
	Mode byte
	Arg  string // "" when the mode takes none (or a list query)
}

// ChanModes is the ISUPPORT CHANMODES value: list modes, modes with an
// argument always, with an argument when set, and flags.
const ChanModes = "beI,k,fl,imnstCMR"

// ParseModes splits a MODE request ("+o-v", "alice", "bob") into changes.
// Mode letters rooms do not know are returned in unknown.
func ParseModes(modestr string, args []string) (changes []ModeChange, unknown []byte) {
	add := true
	next := func() (string, bool) {
		if len(args) == 0 {
			return "", false
		}
		a := args[0]
		args = args[1:]
		return a, true
	}
	for i := 0; i < len(modestr); i++ {
		c := modestr[i]
		switch c {
		case '+':
			add = true
		case '-':
			add = false
		case 'b', 'e', 'I': // a list: an argument changes it, none lists it
			arg, _ := next()
			changes = append(changes, ModeChange{Add: add, Mode: c, Arg: arg})
		case 'o', 'v':
			if arg, ok := next(); ok {
				changes = append(changes, ModeChange{Add: add, Mode: c, Arg: arg})
			}
		case 'k':
			arg, ok := next()
			if add && !ok {
				continue
			}
			changes = append(changes, ModeChange{Add: add, Mode: c, Arg: arg})
		case 'l', 'f':
			if add {
				if arg, ok := next(); ok {
					changes = append(changes, ModeChange{Add: true, Mode: c, Arg: arg})
				}
				continue
			}
			changes = append(changes, ModeChange{Add: false, Mode: c})
		case 'i', 'm', 'n', 's', 't', 'C', 'M', 'R':
			changes = append(changes, ModeChange{Add: add, Mode: c})
		default:
			unknown = append(unknown, c)
		}
	}
	return changes, unknown
}

// matches reports whether entry e covers member m: its account ($a:), the
// prefix everyone sees, or, for a server operator's entry, the same with
// its real address, so an operator who knows the address (or a range) can
// ban it.
func (m *member) matches(e ListEntry) bool {
	if acct, ok := strings.CutPrefix(e.Mask, "$a:"); ok {
		return m.Account != "" && protocol.MatchMask(acct, m.Account)
	}
	if protocol.MatchMask(e.Mask, m.prefix) {
		return true
	}
	return e.ByOper && m.IP != "" && m.IP != m.Host && protocol.MatchMask(e.Mask, m.Nick+"!"+m.User+"@"+m.IP)
}

func listed(list []ListEntry, m *member) bool {
	for _, e := range list {
		if m.matches(e) {
			return true
		}
	}
	return false
}

// banned reports whether m is banned and not excepted.
func (r *Room) banned(m *member) bool {
	return listed(r.modes.bans, m) && !listed(r.modes.excepts, m)
}

// modeArgs returns the mode string and arguments for 324.
func (r *Room) modeArgs(showKey bool) []string {
	out := []string{"+" + r.modes.flags()}
	if r.modes.forward != "" {
		out = append(out, r.modes.forward)
	}
	if r.modes.key != "" {
		if showKey {
			out = append(out, r.modes.key)
		} else {
			out = append(out, "*")
		}
	}
	if r.modes.limit > 0 {
		out = append(out, strconv.Itoa(r.modes.limit))
	}
	return out
}

package rooms

import (
	"strconv"

	"github.com/livechat/livechat/protocol"
)

func (r *Room) sendTopic(c Client, nick string) {
	r.numeric(c, nick, protocol.RPL_TOPIC, r.name, r.topic.text)
	r.numeric(c, nick, protocol.RPL_TOPICWHOTIME, r.name, r.topic.setBy, strconv.FormatInt(r.topic.setAt.Unix(), 10))
}

// doNames sends the member list in as few 353 lines as fit the line limit.
func (r *Room) doNames(c Client, nick string) {
	userhost := c.Features()&FeatUserhostInNames != 0
	multi := c.Features()&FeatMultiPrefix != 0
	symbol := "="
	if r.modes.secret {
		symbol = "@"
	}
	head := protocol.Message{Source: r.opts.ServerName, Command: protocol.RPL_NAMREPLY, Params: []string{nick, symbol, r.name, ""}}
	budget := protocol.MaxBodyLen - len(head.Bytes()) - 2 // what is left for the names
	names := make([]byte, 0, budget+protocol.NickLen+1)
	flush := func() {
		head.Params[3] = string(names)
		c.Reply(head.Bytes())
		names = names[:0]
	}
	for _, m := range r.members {
		entry := m.Nick
		if userhost {
			entry = m.prefix
		}
		entry = m.role.prefixes(multi) + entry
		if len(names) > 0 && len(names)+1+len(entry) > budget {
			flush()
		}
		if len(names) > 0 {
			names = append(names, ' ')
		}
		names = append(names, entry...)
	}
	if len(names) > 0 {
		flush()
	}
	r.numeric(c, nick, protocol.RPL_ENDOFNAMES, r.name, "End of /NAMES list")
}

// WhoEntry is one member as WHO shows it.
type WhoEntry struct {
	Client   Client
	Nick     string
	User     string
	Host     string
	Realname string
	Account  string
	Prefix   string // role prefixes, all of them with multi-prefix
}

func (r *Room) doWho(c Client) []WhoEntry {
	multi := c.Features()&FeatMultiPrefix != 0
	out := make([]WhoEntry, 0, len(r.members))
	for _, m := range r.members {
		out = append(out, WhoEntry{Client: m.Client, Nick: m.Nick, User: m.User, Host: m.Host, Realname: m.Realname, Account: m.Account, Prefix: m.role.prefixes(multi)})
	}
	return out
}

func (r *Room) doHistory(c Client, q Query) historyAnswer {
	if r.memberOf(c) == nil {
		return historyAnswer{err: ErrNotMember}
	}
	events, certain := r.history.Query(q)
	return historyAnswer{events: events, certain: certain}
}

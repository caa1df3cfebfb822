package rooms

import (
	"strings"
	"time"

	"github.com/livechat/livechat/protocol"
)

func (r *Room) doSay(c Client, s Speech) {
	m := r.memberOf(c)
	if m == nil {
		if r.modes.noExternal {
			r.numeric(c, s.From.Nick, protocol.ERR_CANNOTSENDTOCHAN, r.name, "Cannot send to room: you are not in it (JOIN "+r.name+" first)")
			return
		}
		m = newMember(s.From)
	}
	why := r.muted(m)
	if why == "" && r.modes.noCTCP && isCTCP(s) {
		why = "CTCP is not allowed here (+C)"
	}
	if why != "" {
		r.numeric(c, m.Nick, protocol.ERR_CANNOTSENDTOCHAN, r.name, "Cannot send to room: "+why)
		return
	}
	start := time.Now()
	e := &Event{At: r.opts.now(), ID: r.opts.IDs.Next(), Source: m.prefix, Account: m.Account, Origin: m.Origin, Command: s.Command, Tags: s.Tags}
	tagsOnly := s.Command == "TAGMSG"
	if s.Status != 0 {
		r.sayToRoles(c, e, s)
		return
	}
	if tagsOnly {
		e.Params = []string{r.name}
		if e.KeepsTagmsg() {
			r.record(e)
		}
	} else {
		e.Params = []string{r.name, s.Text}
		e.Lines = s.Lines
		r.record(e)
	}
	n := r.broadcast(e, c, c.Features()&FeatEcho != 0, tagsOnly)
	r.opts.Hooks.delivered(n, time.Since(start))
}

// sayToRoles relays a STATUSMSG to the members with the role it names
// (and the sender's echo): "@#room" for operators, "+#room" for voiced
// members and operators. It is no message to the room: not in history.
func (r *Room) sayToRoles(c Client, e *Event, s Speech) {
	want := roleOp
	if s.Status == '+' {
		want |= roleVoice
	}
	target := string(s.Status) + r.name
	if s.Command == "TAGMSG" {
		e.Params = []string{target}
	} else {
		e.Params, e.Lines = []string{target, s.Text}, s.Lines
	}
	rs := NewRenderings(e)
	n := 0
	for _, o := range r.members {
		if o.role&want == 0 {
			continue
		}
		n += queueTo(o.Client, c, &rs, s.Command == "TAGMSG")
		for _, d := range o.devices {
			n += queueTo(d, c, &rs, s.Command == "TAGMSG")
		}
	}
	r.dirty = r.dirty || n > 0
	if f := c.Features(); f&FeatEcho != 0 && (s.Command != "TAGMSG" || f&FeatTags != 0) {
		c.Reply(rs.For(f))
	}
}

// muted says why m may not speak in the room, or "" if it may. What a
// muted member cannot say in a message it cannot say in a PART reason
// either.
func (r *Room) muted(m *member) string {
	switch {
	case m.role != 0:
		return ""
	case r.modes.moderated:
		return "it is moderated (+m) and you have no voice"
	case r.modes.regSpeak && m.Account == "":
		return "only logged-in users may speak here (+M); log in or ask for voice"
	case r.banned(m):
		return "you are banned"
	}
	return ""
}

func (r *Room) doTopic(c Client, nick string, text *string) {
	if text == nil {
		if r.topic.text == "" {
			r.numeric(c, nick, protocol.RPL_NOTOPIC, r.name, "No topic is set")
			return
		}
		r.sendTopic(c, nick)
		return
	}
	m := r.memberOf(c)
	if m == nil {
		r.numeric(c, nick, protocol.ERR_NOTONCHANNEL, r.name, "You're not on that room")
		return
	}
	if r.modes.topicLock && m.role&roleOp == 0 {
		r.numeric(c, nick, protocol.ERR_CHANOPRIVSNEEDED, r.name, "You're not a room operator (the topic is locked, +t)")
		return
	}
	r.topic = topic{text: *text, setBy: m.Nick, setAt: r.opts.now()}
	snap := r.topic
	r.topicSnap.Store(&snap)
	e := r.event(m, "TOPIC", r.name, r.topic.text)
	r.record(e)
	r.broadcast(e, c, true, false)
	r.persist()
}

// isCTCP reports whether s is a CTCP request or reply other than ACTION
// (/me), which +C lets through.
func isCTCP(s Speech) bool {
	return s.Command != "TAGMSG" && strings.HasPrefix(s.Text, "\x01") && !strings.HasPrefix(s.Text, "\x01ACTION ")
}

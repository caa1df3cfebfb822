package rooms

import (
	"time"

	"github.com/livechat/livechat/protocol"
)

func (r *Room) doSay(c Client, s Speech) {
	m := r.memberOf(c)
	if m == nil {
		// Rooms are +n: only members speak. The daemon checks membership
		// first for a precise reply; this covers a PART racing the message.
		r.numeric(c, "*", protocol.ERR_CANNOTSENDTOCHAN, r.name, "Cannot send to room: you are not in it (JOIN "+r.name+" first)")
		return
	}
	start := time.Now()
	e := &Event{At: r.opts.now(), ID: r.opts.IDs.Next(), Source: m.prefix, Account: m.Account, Command: s.Command, Tags: s.Tags}
	tagsOnly := s.Command == "TAGMSG"
	if tagsOnly {
		e.Params = []string{r.name}
	} else {
		e.Params = []string{r.name, s.Text}
		r.history.Add(e)
	}
	n := r.broadcast(e, c, c.Features()&FeatEcho != 0, tagsOnly)
	r.opts.Hooks.delivered(n, time.Since(start))
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
	r.topic = topic{text: *text, setBy: m.Nick, setAt: r.opts.now()}
	snap := r.topic.text
	r.topicSnap.Store(&snap)
	r.broadcast(r.event(m, "TOPIC", r.name, r.topic.text), c, true, false)
}

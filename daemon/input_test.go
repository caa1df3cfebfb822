package daemon

import (
	"strings"
	"testing"

	"github.com/livechat/livechat/protocol"
)

// Tags whose keys message-tags does not allow are dropped before anything
// is relayed, the message still runs, and the sender hears why (WARN).
func TestInvalidTagKeysAreDropped(t *testing.T) {
	srv, addr := testServer(t)
	a := connectCaps(t, addr, "tagger", "message-tags")
	b := connectCaps(t, addr, "watcher", "message-tags")
	a.join("#t")
	b.join("#t")
	a.send("@+a\x01b=1;+é=2;+=4;+x/=5;+/y=6;+ok=1;+example.com/ok-2=3 PRIVMSG #t :hi")
	m, _ := b.expect("PRIVMSG")
	var keys []string
	for _, tag := range m.Tags {
		if strings.HasPrefix(tag.Key, "+") {
			keys = append(keys, tag.Key)
		}
	}
	if strings.Join(keys, ",") != "+ok,+example.com/ok-2" || m.Param(1) != "hi" {
		t.Errorf("relayed %q, want only +ok and +example.com/ok-2", m.String())
	}
	if w, _ := a.expect("WARN"); w.Param(0) != "PRIVMSG" || w.Param(1) != "INVALID_TAG" {
		t.Errorf("sender got %q, want WARN PRIVMSG INVALID_TAG", w.String())
	}
	a.send("@+typing=active TAGMSG #t") // valid keys: no WARN
	b.expect("TAGMSG")
	if got := a.sync(); len(got) != 0 {
		t.Errorf("valid tags answered %v", commands(got))
	}
	if n := sample(t, scrape(t, srv), `livechat_input_refused_total{reason="tag_key"}`); n != 1 {
		t.Errorf(`input_refused{reason="tag_key"} = %v, want 1`, n)
	}
}

// A line of tags and nothing else is not too long: it has no command, and
// gets FAIL saying so, with nothing else changed.
func TestTagsOnlyLine(t *testing.T) {
	_, addr := testServer(t)
	c := connect(t, addr, "tom")
	c.send("@a=b")
	got := c.sync()
	if len(got) != 1 || got[0].Command != "FAIL" || got[0].Param(1) != "INVALID_MESSAGE" || !strings.Contains(got[0].Param(2), "no command") {
		t.Fatalf("tags alone: got %v, want one FAIL * INVALID_MESSAGE about no command", got)
	}
	for _, m := range got {
		if m.Command == protocol.ERR_INPUTTOOLONG {
			t.Errorf("tags alone answered 417")
		}
	}
}

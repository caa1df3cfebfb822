package daemon

import (
	"strconv"
	"strings"
	"testing"
)

// A nick given up by a rename stays taken until the rename has been
// announced: an observer must never hear someone take a nick while its
// previous holder is, as far as it was told, still using it. The race is
// narrow, so the test repeats it (bounded) with the two renames sent
// back to back from two connections.
func TestRenamedNickFreedOnlyAfterAnnouncement(t *testing.T) {
	_, addr := testServer(t)
	a := connect(t, addr, "a0")
	b := connect(t, addr, "b0")
	watcher := connect(t, addr, "watcher")
	for _, c := range []*client{a, b, watcher} {
		c.join("#names")
	}
	watcher.sync()
	aNick, bNick := "a0", "b0"
	for i := 1; i <= 3000; i++ {
		next := "a" + strconv.Itoa(i)
		// a moves on; b grabs a's old nick at the same moment.
		a.conn.Write([]byte("NICK " + next + "\r\n"))
		b.conn.Write([]byte("NICK " + aNick + "\r\n"))
		a.sync()
		b.sync()
		// The watcher's view: who has which nick.
		holders := map[string]string{aNick: "a", bNick: "b"}
		for _, m := range watcher.sync() {
			if m.Command != "NICK" {
				continue
			}
			from, _, _ := strings.Cut(m.Source, "!")
			who := holders[from]
			if other, taken := holders[m.Param(0)]; taken {
				t.Fatalf("round %d: watcher heard %s take %s while %s still had it", i, from, m.Param(0), other)
			}
			delete(holders, from)
			holders[m.Param(0)] = who
		}
		for nick, who := range holders {
			if who == "a" {
				aNick = nick
			} else {
				bNick = nick
			}
		}
	}
}

package daemon

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/livechat/livechat/configs"
	"github.com/livechat/livechat/daemon/accounts"
	"github.com/livechat/livechat/protocol"
)

// cloakOf is the host srv shows for a client at ip.
func cloakOf(srv *Server, ip string) string {
	return cloakHost(srv.Config().Cloak, srv.cloakKey, ip)
}

var cloakShape = regexp.MustCompile(`^[a-z2-7]{16}\.livechat$`)

// withOperator adds the server operator boss (password "boss-pw").
func withOperator(t *testing.T) func(*configs.Config, *Options) {
	hash, err := accounts.HashPassword("boss-pw", accounts.Params{Memory: 64, Time: 1, Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	return func(c *configs.Config, _ *Options) { c.Operators = []string{"boss:" + hash} }
}

// whois sends WHOIS nick from c and returns the replies up to 318, by
// numeric (an empty message for one not sent).
func whois(c *client, nick string) map[string]*protocol.Message {
	c.t.Helper()
	c.send("WHOIS " + nick)
	_, lines := c.expect(protocol.RPL_ENDOFWHOIS)
	got := map[string]*protocol.Message{}
	for _, code := range []string{protocol.RPL_WHOISUSER, protocol.RPL_WHOISACTUALLY, protocol.RPL_WHOISHOST} {
		got[code] = &protocol.Message{}
	}
	for _, m := range lines {
		got[m.Command] = &m
	}
	return got
}

// Nobody but the user themself and server operators learns a user's
// address: the JOIN prefix, WHOIS 311 and WHO 352 show the cloak.
func TestCloakHidesAddress(t *testing.T) {
	srv, addr := testServer(t, withOperator(t))
	cloak := cloakOf(srv, "127.0.0.1")
	if !cloakShape.MatchString(cloak) {
		t.Fatalf("cloak %q is not <16 base32 letters>.livechat", cloak)
	}

	alice := connect(t, addr, "alice")
	alice.join("#r")
	bob := dial(t, addr)
	bob.nick = "bob"
	bob.send("NICK bob", "USER bob 0 * :Bob")
	_, burst := bob.expect(protocol.RPL_ENDOFMOTD)
	shown := ""
	for _, m := range burst {
		if m.Command == protocol.RPL_VISIBLEHOST {
			shown = m.Param(1)
		}
	}
	if shown != cloak {
		t.Errorf("welcome told bob his host is %q, want 396 with %q", shown, cloak)
	}
	bob.join("#r")

	join, _ := alice.expect("JOIN")
	if join.Source != "bob!~bob@"+cloak {
		t.Errorf("alice sees bob join as %q, want the cloak %q", join.Source, cloak)
	}
	w := whois(alice, "bob")
	if host := w[protocol.RPL_WHOISUSER].Param(3); host != cloak {
		t.Errorf("alice's WHOIS bob: 311 host %q, want %q", host, cloak)
	}
	for _, code := range []string{protocol.RPL_WHOISACTUALLY, protocol.RPL_WHOISHOST} {
		if m := w[code]; m.Command != "" {
			t.Errorf("alice's WHOIS bob shows his address: %q", m.String())
		}
	}
	alice.send("WHO #r")
	for {
		m := alice.read()
		if m.Command == protocol.RPL_ENDOFWHO {
			break
		}
		if m.Command == protocol.RPL_WHOREPLY && m.Param(3) != cloak {
			t.Errorf("WHO shows %s at %q, want %q", m.Param(5), m.Param(3), cloak)
		}
	}
	alice.send("USERHOST bob")
	if uh := alice.expectNumeric(protocol.RPL_USERHOST); strings.Contains(uh.String(), "127.0.0.1") {
		t.Errorf("USERHOST shows bob's address to alice: %q", uh.String())
	}

	// The user themself, and an operator, see the address.
	boss := connect(t, addr, "boss")
	boss.send("OPER boss boss-pw")
	boss.expectNumeric(protocol.RPL_YOUREOPER)
	for _, viewer := range []*client{bob, boss} {
		w := whois(viewer, "bob")
		if host := w[protocol.RPL_WHOISUSER].Param(3); host != cloak {
			t.Errorf("%s's WHOIS bob: 311 host %q, want the cloak %q", viewer.nick, host, cloak)
		}
		if got := w[protocol.RPL_WHOISACTUALLY]; got.Param(2) != "~bob@127.0.0.1" || got.Param(3) != "127.0.0.1" {
			t.Errorf("%s's WHOIS bob: 338 %q, want ~bob@127.0.0.1 127.0.0.1", viewer.nick, got.String())
		}
		if got := w[protocol.RPL_WHOISHOST]; !strings.HasSuffix(got.Param(2), " 127.0.0.1") {
			t.Errorf("%s's WHOIS bob: 378 %q, want the address", viewer.nick, got.String())
		}
	}

	// The same address gets the same cloak on every connection.
	again := connect(t, addr, "bob2")
	again.join("#r")
	if join, _ := alice.expect("JOIN"); join.Source != "bob2!~bob2@"+cloak {
		t.Errorf("a reconnection joins as %q, want the same cloak %q", join.Source, cloak)
	}
}

// The key lives in data_dir/cloak.key, so cloaks (and bans on them) stay
// the same when the daemon restarts; another data dir gets other cloaks.
func TestCloakStableAcrossRestart(t *testing.T) {
	dir := t.TempDir()
	fileStore := func(dataDir string) *configs.Config {
		c := configs.Default()
		c.DataDir = dataDir
		return &c
	}
	key, err := OpenCloakKey(fileStore(dir))
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(filepath.Join(dir, "cloak.key")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("cloak.key: %v, mode %v; want 0600", err, fi.Mode())
	}
	seen := func(key []byte) string {
		_, addr := testServer(t, func(_ *configs.Config, o *Options) { o.CloakKey = key })
		watcher := connect(t, addr, "watcher")
		watcher.join("#r")
		connect(t, addr, "bob").join("#r")
		join, _ := watcher.expect("JOIN")
		return join.Source
	}
	first := seen(key)
	restartKey, err := OpenCloakKey(fileStore(dir))
	if err != nil {
		t.Fatal(err)
	}
	if second := seen(restartKey); second != first || strings.Contains(first, "127.0.0.1") {
		t.Errorf("after a restart bob is %q, before %q; want the same cloak", second, first)
	}
	otherKey, err := OpenCloakKey(fileStore(t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	if other := seen(otherKey); other == first {
		t.Errorf("another data dir gives the same cloak %q", other)
	}

	if err := os.WriteFile(filepath.Join(dir, "cloak.key"), []byte("not hex\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenCloakKey(fileStore(dir)); err == nil || !strings.Contains(err.Error(), "cloak.key") {
		t.Errorf("a damaged cloak.key: %v, want an error naming it", err)
	}
}

func TestCloakHost(t *testing.T) {
	c := configs.Default().Cloak
	key := []byte("0123456789abcdef")
	h := func(ip string) string { return cloakHost(c, key, ip) }
	for _, tc := range []struct {
		a, b string
		same bool
	}{
		{"192.0.2.1", "192.0.2.1", true},
		{"192.0.2.1", "192.0.2.2", false},
		{"192.0.2.1", "::ffff:192.0.2.1", true},
		{"2001:db8::1", "2001:db8::2", true}, // one /64
		{"2001:db8::1", "2001:db8:0:1::1", false},
		{"2001:db8::1", "2001:db8::1%eth0", true},
	} {
		if (h(tc.a) == h(tc.b)) != tc.same {
			t.Errorf("cloaks of %s and %s: %q, %q; same = %v wanted", tc.a, tc.b, h(tc.a), h(tc.b), tc.same)
		}
	}
	if v6 := h("2001:db8::1"); !cloakShape.MatchString(v6) {
		t.Errorf("IPv6 cloak %q", v6)
	}
	c.IPv4Prefix = 24
	if h("192.0.2.1") != h("192.0.2.200") {
		t.Error("ipv4_prefix 24 does not share a cloak within the /24")
	}
	c.Secret = "a secret from the config file"
	if h("192.0.2.1") == cloakHost(configs.Default().Cloak, key, "192.0.2.1") {
		t.Error("cloak.secret does not change the key")
	}
	c.Enabled = false
	if h("::1") != "0::1" || h("192.0.2.1") != "192.0.2.1" {
		t.Errorf("cloaking off: %q, %q; want the addresses", h("::1"), h("192.0.2.1"))
	}
}

// tryJoin sends JOIN and returns what answered it: "JOIN" or the error numeric.
func (c *client) tryJoin(room string) string {
	c.t.Helper()
	c.send("JOIN " + room)
	for {
		if m := c.read(); m.Command == "JOIN" || m.Command[0] == '4' {
			return m.Command
		}
	}
}

// speaks reports whether c's message reaches listener. A banned member is
// told 404; the TOPIC query after the message goes through the room's
// queue behind it, so its answer proves any 404 has been sent.
func speaks(c, listener *client, room, text string) bool {
	c.t.Helper()
	c.send("PRIVMSG "+room+" :"+text, "TOPIC "+room)
	for {
		m := c.read()
		if m.Command == protocol.ERR_CANNOTSENDTOCHAN {
			return false
		}
		if m.Command == protocol.RPL_TOPIC || m.Command == protocol.RPL_NOTOPIC {
			break
		}
	}
	for {
		m, _ := listener.expect("PRIVMSG")
		if strings.HasPrefix(m.Source, c.nick+"!") {
			return m.Param(1) == text
		}
	}
}

// A ban on the cloak bans its user. A room operator's ban on the real
// address does not: were it to, banning ranges and watching who can still
// speak would find out a member's address, one bit at a time.
func TestBanOnCloak(t *testing.T) {
	srv, addr := testServer(t)
	op := connect(t, addr, "keeper")
	op.join("#gate")
	troll := connect(t, addr, "troll")
	troll.join("#gate")
	join, _ := op.expect("JOIN")
	_, host, _ := strings.Cut(join.Source, "@")
	if host != cloakOf(srv, "127.0.0.1") {
		t.Fatalf("troll joined as %q", join.Source)
	}
	op.send("MODE #gate +b *!*@" + host)
	op.expect("MODE")
	troll.send("PART #gate")
	troll.expect("PART")
	if got := troll.tryJoin("#gate"); got != protocol.ERR_BANNEDFROMCHAN {
		t.Fatalf("banned by cloak, JOIN answered %s", got)
	}
	op.send("MODE #gate -b *!*@" + host)
	op.expect("MODE")
	troll.join("#gate")

	op.send("MODE #gate +b *!*@127.0.0.*")
	if m, _ := op.expect("MODE"); m.Param(2) != "*!*@127.0.0.*" {
		t.Errorf("room op's ban set as %q", m.String())
	}
	if !speaks(troll, op, "#gate", "the address ban does not bite") {
		t.Error("a room operator's ban on the real address silenced troll")
	}
	troll.send("PART #gate")
	troll.expect("PART")
	if got := troll.tryJoin("#gate"); got != "JOIN" {
		t.Errorf("a room operator's ban on the real address: JOIN answered %s", got)
	}
	if !speaks(op, troll, "#gate", "bystander still served") {
		t.Error("keeper's message did not arrive")
	}
}

// A server operator's ban matches the real address; its mask, which may
// hold that address, is shown only to server operators, and only they
// lift it.
func TestOperBanOnRealAddress(t *testing.T) {
	_, addr := testServer(t, withOperator(t))
	boss := connect(t, addr, "boss")
	boss.send("OPER boss boss-pw")
	boss.expectNumeric(protocol.RPL_YOUREOPER)
	boss.join("#gate")
	keeper := connect(t, addr, "keeper")
	keeper.join("#gate")
	boss.send("MODE #gate +o keeper")
	boss.expect("MODE")
	keeper.expect("MODE")
	troll := connect(t, addr, "troll")
	troll.join("#gate")

	const mask = "*!*@127.0.0.*"
	boss.send("MODE #gate +b " + mask)
	if m, _ := boss.expect("MODE"); m.Param(2) != mask {
		t.Errorf("boss sees his ban as %q", m.String())
	}
	if m, _ := keeper.expect("MODE"); m.Param(1) != "+b" || m.Param(2) != "<hidden>" {
		t.Errorf("keeper sees the server operator's ban as %q, want +b <hidden>", m.String())
	}
	if speaks(troll, keeper, "#gate", "should not arrive") {
		t.Error("a server operator's ban on the real address did not silence troll")
	}
	troll.send("PART #gate")
	troll.expect("PART")
	if got := troll.tryJoin("#gate"); got != protocol.ERR_BANNEDFROMCHAN {
		t.Errorf("banned by a server operator, JOIN answered %s", got)
	}

	for viewer, want := range map[*client]string{boss: mask, keeper: "<hidden>"} {
		viewer.send("MODE #gate b")
		if m := viewer.expectNumeric(protocol.RPL_BANLIST); m.Param(2) != want || m.Param(3) != "boss" {
			t.Errorf("%s lists %q, want %s set by boss", viewer.nick, m.String(), want)
		}
	}

	// A room operator can neither lift it nor learn of it by setting the
	// same mask: theirs is a separate, ordinary entry.
	keeper.send("MODE #gate -b " + mask)
	for _, m := range keeper.sync() {
		if m.Command == "MODE" {
			t.Errorf("keeper lifted the server operator's ban: %q", m.String())
		}
	}
	keeper.send("MODE #gate +b "+mask, "MODE #gate -b "+mask)
	for _, sign := range []string{"+b", "-b"} {
		if m, _ := keeper.expect("MODE"); m.Param(1) != sign || m.Param(2) != mask {
			t.Errorf("keeper's own %s: %q", sign, m.String())
		}
	}
	if got := troll.tryJoin("#gate"); got != protocol.ERR_BANNEDFROMCHAN {
		t.Errorf("after keeper's -b, JOIN answered %s; the server operator's ban should hold", got)
	}

	boss.send("MODE #gate -b " + mask)
	if m, _ := keeper.expect("MODE"); m.Param(1) != "-b" || m.Param(2) != "<hidden>" {
		t.Errorf("keeper sees the ban lifted as %q", m.String())
	}
	troll.join("#gate")
	if !speaks(keeper, troll, "#gate", "bystander still served") {
		t.Error("keeper's message did not arrive")
	}
}

// BAN <nick> of a logged-in user bans the account and the cloak, so
// logging out and coming back as a guest does not escape it.
func TestBanNickSurvivesLogout(t *testing.T) {
	srv, addr := testServer(t)
	op := connect(t, addr, "keeper")
	op.join("#gate")
	evader := connect(t, addr, "evader")
	evader.send("REGISTER evader long-enough-pw")
	evader.expect(protocol.RPL_LOGGEDIN)
	evader.join("#gate")

	op.send("BAN #gate evader")
	mode, _ := op.expect("MODE")
	want := []string{"#gate", "+bb", "*!*@" + cloakOf(srv, "127.0.0.1"), "$a:evader"}
	if strings.Join(mode.Params, " ") != strings.Join(want, " ") {
		t.Errorf("BAN evader set %q, want MODE %s", mode.String(), strings.Join(want, " "))
	}
	evader.send("PART #gate", "LOGOUT")
	evader.expect("PART")
	evader.expect(protocol.RPL_LOGGEDOUT)
	evader.send("JOIN #gate")
	evader.expectNumeric(protocol.ERR_BANNEDFROMCHAN)

	op.send("PRIVMSG #gate :bystander still served")
	op.sync()
}

// BenchmarkCloakHost is the cost cloaking adds to each connection.
func BenchmarkCloakHost(b *testing.B) {
	c, key := configs.Default().Cloak, randomCloakKey()
	for b.Loop() {
		cloakHost(c, key, "2001:db8::1")
	}
}

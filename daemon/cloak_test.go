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

// A ban on the cloak bans its user; so does a ban on the real address,
// which only operators see.
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
	for _, mask := range []string{"*!*@" + host, "*!*@127.0.0.*"} {
		op.send("MODE #gate +b " + mask)
		op.expect("MODE")
		troll.send("PART #gate", "JOIN #gate")
		troll.expect("PART")
		troll.expectNumeric(protocol.ERR_BANNEDFROMCHAN)
		op.send("MODE #gate -b " + mask)
		op.expect("MODE")
		troll.join("#gate")
	}
	op.send("PRIVMSG #gate :still here")
	if m, _ := troll.expect("PRIVMSG"); m.Param(1) != "still here" {
		t.Errorf("bystander's message arrived as %q", m.String())
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

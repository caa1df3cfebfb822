package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/livechat/livechat/daemon/historystore"
	"github.com/livechat/livechat/protocol"
	"github.com/livechat/livechat/rooms"
)

// historyT0 is when the test history starts; event i is i minutes later.
var historyT0 = time.Date(2024, 3, 4, 5, 6, 7, 0, time.UTC)

// historyEvent is one event the test history holds.
type historyEvent struct {
	target, from, command, text string
}

// The conversations of the test history.
var (
	convAliceBob   = rooms.ConversationTarget("a:alice", "a:bob")
	convAliceGuest = rooms.ConversationTarget("a:alice", "c:x1.7")
	convBobCarol   = rooms.ConversationTarget("a:bob", "a:carol")
)

// historyEvents is the test history, in append order. Every text is
// unique, so it can be looked for in the file; "from" is an account, or
// a connection identity for the guest.
var historyEvents = []historyEvent{
	{"#lobby", "alice", "JOIN", ""},
	{"#lobby", "alice", "PRIVMSG", "alice-lobby-secret-one"},
	{"#lobby", "bob", "PRIVMSG", "bob-lobby-hello"},
	{"#other", "bob", "PRIVMSG", "bob-other-words"},
	{"#lobby", "Alice", "NOTICE", "alice-lobby-secret-two"},
	{convAliceBob, "alice", "PRIVMSG", "alice-to-bob-secret"},
	{convAliceBob, "bob", "PRIVMSG", "bob-to-alice-reply"},
	{convAliceGuest, "c:x1.7", "PRIVMSG", "guest-to-alice-question"},
	{convAliceGuest, "alice", "PRIVMSG", "alice-to-guest-secret"},
	{convBobCarol, "carol", "PRIVMSG", "carol-to-bob-note"},
	{"#other", "alice", "PRIVMSG", "alice-other-secret"},
}

// historyDataDir returns a data dir whose history.db holds historyEvents,
// written through the store as the daemon writes them. The msgid of event
// i is "m" and i.
func historyDataDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	store, err := historystore.Open(filepath.Join(dir, "history.db"), historystore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for i, h := range historyEvents {
		e := &rooms.Event{At: historyT0.Add(time.Duration(i) * time.Minute), ID: "m" + strconv.Itoa(i), Command: h.command}
		if guest, ok := strings.CutPrefix(h.from, "c:"); ok {
			e.Source, e.Origin = "guest!~g@host", "c:"+guest
		} else {
			e.Source, e.Account, e.Origin = h.from+"!~u@host", h.from, "a:"+strings.ToLower(h.from)
		}
		switch {
		case h.command == "JOIN":
			e.Params = []string{h.target}
		case protocol.IsRoomName(h.target):
			e.Params = []string{h.target, h.text}
		default: // a private message names its recipient
			e.Params = []string{"them", h.text}
		}
		if h.text == "alice-lobby-secret-one" {
			e.Tags = []protocol.Tag{{Key: "+draft/reply", Value: "m0"}}
		}
		store.Append(h.target, e)
	}
	if err := store.Close(); err != nil {
		t.Fatal(err)
	}
	return dir
}

// historyRun runs runHistory and returns its status, stdout and stderr.
func historyRun(t *testing.T, dir string, args ...string) (int, string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code := runHistory(args, "", dir, &out, &errOut)
	return code, out.String(), errOut.String()
}

// historyFile returns the bytes of history.db and its write-ahead log, as
// a disk thief would see them.
func historyFile(t *testing.T, dir string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "history.db"))
	if err != nil {
		t.Fatal(err)
	}
	log, err := os.ReadFile(filepath.Join(dir, "history.db.wal"))
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	return append(b, log...)
}

// exportedLine is a line of `history export`.
type exportedLine struct {
	Target string `json:"target"`
	historystore.ExportedEvent
}

func parseExport(t *testing.T, out string) []exportedLine {
	t.Helper()
	var lines []exportedLine
	for l := range strings.Lines(out) {
		var x exportedLine
		if err := json.Unmarshal([]byte(l), &x); err != nil {
			t.Fatalf("export line %q: %v", l, err)
		}
		lines = append(lines, x)
	}
	return lines
}

func TestHistoryCLIStats(t *testing.T) {
	dir := historyDataDir(t)
	code, out, errOut := historyRun(t, dir, "stats")
	if code != 0 || errOut != "" {
		t.Fatalf("exit %d, stderr %q", code, errOut)
	}
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if len(lines) != 7 {
		t.Fatalf("want a header, 5 targets and a total; got\n%s", out)
	}
	if f := strings.Fields(lines[0]); !slices.Equal(f, []string{"TARGET", "EVENTS", "BYTES", "OLDEST", "NEWEST"}) {
		t.Errorf("header %q", lines[0])
	}
	// Rooms by name, then the conversations as their two identities.
	want := [][]string{
		{"#lobby", "4", "2024-03-04T05:06:07Z", "2024-03-04T05:10:07Z"},
		{"#other", "2", "2024-03-04T05:09:07Z", "2024-03-04T05:16:07Z"},
		{"a:alice", "a:bob", "2", "2024-03-04T05:11:07Z", "2024-03-04T05:12:07Z"},
		{"a:alice", "c:x1.7", "2", "2024-03-04T05:13:07Z", "2024-03-04T05:14:07Z"},
		{"a:bob", "a:carol", "1", "2024-03-04T05:15:07Z", "2024-03-04T05:15:07Z"},
	}
	for i, w := range want {
		f := strings.Fields(lines[1+i])
		// Drop the bytes column: it depends on the encoding.
		if len(f) != len(w)+1 || f[len(f)-3] == "0" {
			t.Errorf("row %q", lines[1+i])
			continue
		}
		f = slices.Delete(f, len(f)-3, len(f)-2)
		if !slices.Equal(f, w) {
			t.Errorf("row %q, want %q and the bytes", lines[1+i], w)
		}
	}
	total := lines[6]
	for _, s := range []string{"2 rooms", "3 private conversations", "11 events", filepath.Join(dir, "history.db") + " is "} {
		if !strings.Contains(total, s) {
			t.Errorf("total line %q lacks %q", total, s)
		}
	}
}

func TestHistoryCLIExportRoom(t *testing.T) {
	dir := historyDataDir(t)
	code, out, errOut := historyRun(t, dir, "export", "#LOBBY")
	if code != 0 || errOut != "4 events\n" {
		t.Fatalf("exit %d, stderr %q", code, errOut)
	}
	lines := parseExport(t, out)
	var ids []string
	for _, l := range lines {
		if l.Target != "#lobby" {
			t.Errorf("line of %q in the export of #lobby", l.Target)
		}
		ids = append(ids, l.ID)
	}
	if !slices.Equal(ids, []string{"m0", "m1", "m2", "m4"}) {
		t.Fatalf("msgids %q, want #lobby's in order", ids)
	}
	l := lines[1]
	if l.Time != "2024-03-04T05:07:07.000Z" || l.Command != "PRIVMSG" || l.Account != "alice" || l.Origin != "a:alice" ||
		l.Source != "alice!~u@host" || !slices.Equal(l.Params, []string{"#lobby", "alice-lobby-secret-one"}) ||
		l.Tags["+draft/reply"] != "m0" {
		t.Errorf("line %+v", l)
	}
	// The target comes first, so a reader of the raw lines sees it at once.
	if !strings.HasPrefix(out, `{"target":"#lobby","time":"2024-03-04T05:06:07.000Z",`) {
		t.Errorf("first line %q", strings.SplitN(out, "\n", 2)[0])
	}
}

func TestHistoryCLIExportConversations(t *testing.T) {
	dir := historyDataDir(t)
	for _, tc := range []struct {
		args    []string
		targets []string
		ids     []string
		count   string
	}{
		// A person: every conversation they take part in, whoever spoke.
		{[]string{"ALICE"}, []string{convAliceBob, convAliceBob, convAliceGuest, convAliceGuest}, []string{"m5", "m6", "m7", "m8"}, "4 events in 2 private conversations\n"},
		{[]string{"a:bob"}, []string{convAliceBob, convAliceBob, convBobCarol}, []string{"m5", "m6", "m9"}, "3 events in 2 private conversations\n"},
		{[]string{"c:x1.7"}, []string{convAliceGuest, convAliceGuest}, []string{"m7", "m8"}, "2 events in 1 private conversation\n"},
		// One conversation, by its two identities in either order.
		{[]string{"c:x1.7", "alice"}, []string{convAliceGuest, convAliceGuest}, []string{"m7", "m8"}, "2 events\n"},
		{[]string{"Bob", "a:alice"}, []string{convAliceBob, convAliceBob}, []string{"m5", "m6"}, "2 events\n"},
	} {
		code, out, errOut := historyRun(t, dir, append([]string{"export"}, tc.args...)...)
		if code != 0 || errOut != tc.count {
			t.Errorf("%q: exit %d, stderr %q, want %q", tc.args, code, errOut, tc.count)
			continue
		}
		var targets, ids []string
		for _, l := range parseExport(t, out) {
			targets = append(targets, l.Target)
			ids = append(ids, l.ID)
		}
		if !slices.Equal(targets, tc.targets) || !slices.Equal(ids, tc.ids) {
			t.Errorf("%q: targets %q msgids %q, want %q %q", tc.args, targets, ids, tc.targets, tc.ids)
		}
	}

	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"#nowhere"}, "livechatd history: no history for #nowhere (livechatd history stats lists what there is)\n"},
		{[]string{"dave"}, "livechatd history: no private conversations of dave in history (livechatd history stats lists them)\n"},
		{[]string{"alice", "carol"}, "livechatd history: no history for the conversation a:alice a:carol (livechatd history stats lists what there is)\n"},
	} {
		code, out, errOut := historyRun(t, dir, append([]string{"export"}, tc.args...)...)
		if code != 1 || out != "" || errOut != tc.want {
			t.Errorf("%q: exit %d, stdout %q, stderr %q; want 1 and %q", tc.args, code, out, errOut, tc.want)
		}
	}
}

func TestHistoryCLIDelete(t *testing.T) {
	dir := historyDataDir(t)
	if !bytes.Contains(historyFile(t, dir), []byte("bob-lobby-hello")) {
		t.Fatal("the text is not in the file to begin with: this test would prove nothing")
	}
	code, out, errOut := historyRun(t, dir, "delete", "#Lobby")
	if code != 0 || out != "deleted 4 events of #Lobby\n" || errOut != "" {
		t.Fatalf("exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	file := historyFile(t, dir)
	for _, s := range []string{"alice-lobby-secret-one", "bob-lobby-hello", "alice-lobby-secret-two"} {
		if bytes.Contains(file, []byte(s)) {
			t.Errorf("%q is still in history.db after delete", s)
		}
	}
	if !bytes.Contains(file, []byte("bob-other-words")) {
		t.Error("another room's text went too")
	}
	if code, _, errOut := historyRun(t, dir, "export", "#lobby"); code != 1 || !strings.Contains(errOut, "no history for #lobby") {
		t.Errorf("export after delete: exit %d, stderr %q", code, errOut)
	}
	if code, out, _ := historyRun(t, dir, "export", "#other"); code != 0 || len(parseExport(t, out)) != 2 {
		t.Errorf("#other after deleting #lobby: exit %d, %q", code, out)
	}

	// A conversation, by its two identities.
	code, out, errOut = historyRun(t, dir, "delete", "a:bob", "carol")
	if code != 0 || out != "deleted 1 event of the conversation a:bob a:carol\n" || errOut != "" {
		t.Fatalf("exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	if bytes.Contains(historyFile(t, dir), []byte("carol-to-bob-note")) {
		t.Error("the conversation's text is still in history.db")
	}

	code, out, errOut = historyRun(t, dir, "delete", "#lobby")
	if code != 1 || out != "" || !strings.Contains(errOut, "no history for #lobby") {
		t.Fatalf("deleting again: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
}

// forget deletes what the account said everywhere, and the text leaves
// the file; what others said stays, in the same conversations too.
func TestHistoryCLIForget(t *testing.T) {
	dir := historyDataDir(t)
	var mine, theirs []string
	for _, h := range historyEvents {
		if h.text == "" {
			continue
		}
		if strings.EqualFold(h.from, "alice") {
			mine = append(mine, h.text)
		} else {
			theirs = append(theirs, h.text)
		}
	}
	before := historyFile(t, dir)
	for _, s := range mine {
		if !bytes.Contains(before, []byte(s)) {
			t.Fatalf("%q is not in the file to begin with: this test would prove nothing", s)
		}
	}

	code, out, errOut := historyRun(t, dir, "forget", "ALICE")
	// Her join, two lines in #lobby, one in #other, one to bob, one to
	// the guest.
	if code != 0 || out != "deleted 6 events sent by ALICE, in rooms and private conversations\n" || errOut != "" {
		t.Fatalf("exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	file := historyFile(t, dir)
	for _, s := range mine {
		if bytes.Contains(file, []byte(s)) {
			t.Errorf("%q is still in history.db after forget", s)
		}
	}
	for _, s := range theirs {
		if !bytes.Contains(file, []byte(s)) {
			t.Errorf("%q, said by someone else, went too", s)
		}
	}
	code, out, _ = historyRun(t, dir, "export", "alice")
	if code != 0 {
		t.Fatalf("export alice after forget: exit %d", code)
	}
	var ids []string
	for _, l := range parseExport(t, out) {
		ids = append(ids, l.ID)
	}
	if !slices.Equal(ids, []string{"m6", "m7"}) {
		t.Errorf("alice's conversations after forget: %q, want only the others' lines", ids)
	}

	// Nothing left to forget is no failure: the user asked, it is done.
	code, out, errOut = historyRun(t, dir, "forget", "a:alice")
	if code != 0 || out != "deleted 0 events sent by alice, in rooms and private conversations\n" {
		t.Fatalf("forget again: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	code, out, errOut = historyRun(t, dir, "forget", "c:x1.7")
	if code != 1 || out != "" || !strings.Contains(errOut, "not an account") {
		t.Fatalf("forget a guest: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
}

func TestHistoryCLIUsage(t *testing.T) {
	dir := historyDataDir(t)
	before := historyFile(t, dir)
	for _, args := range [][]string{
		nil,
		{"frobnicate"},
		{"stats", "extra"},
		{"export"},
		{"export", "#"},
		{"export", "alice", "alice"},
		{"export", "a", "b", "c"},
		{"export", "#lobby", "alice"},
		{"delete"},
		{"delete", "alice"}, // a person: that is forget
		{"delete", "#lobby", "#other"},
		{"forget"},
		{"forget", ""},
		{"forget", "alice", "bob"},
	} {
		code, out, errOut := historyRun(t, dir, args...)
		if code != 2 || out != "" || !strings.HasPrefix(errOut, "usage: livechatd history") {
			t.Errorf("%q: exit %d, stdout %q, stderr %q; want 2 and usage on stderr", args, code, out, errOut)
		}
	}
	if !bytes.Equal(before, historyFile(t, dir)) {
		t.Error("a usage error changed the file")
	}
	code, out, _ := historyRun(t, dir, "--help")
	if code != 0 || !strings.HasPrefix(out, "usage: livechatd history") {
		t.Errorf("--help: exit %d, stdout %q", code, out)
	}
}

// A wrong data dir is reported, and no empty store is created there.
func TestHistoryCLIMissingStore(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "typo")
	var out, errOut bytes.Buffer
	code := runHistory([]string{"stats"}, "/etc/livechat.yaml", dir, &out, &errOut)
	want := "livechatd history: no history store at " + filepath.Join(dir, "history.db") +
		"; check data_dir in /etc/livechat.yaml or --data-dir\n"
	if code != 1 || out.String() != "" || errOut.String() != want {
		t.Fatalf("exit %d, stdout %q, stderr %q; want 1 and %q", code, out.String(), errOut.String(), want)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Fatalf("the CLI created %s: %v", dir, err)
	}
}

// While the daemon (here: the test) holds the store, every subcommand
// says so in one line and exits 1 without touching anything.
func TestHistoryCLILocked(t *testing.T) {
	dir := historyDataDir(t)
	path := filepath.Join(dir, "history.db")
	held, err := historystore.Open(path, historystore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()

	want := "livechatd history: " + path + " is in use by a running livechatd; stop it first (or "
	// Each waits out the lock timeout (1 s): two make the point.
	for _, args := range [][]string{{"stats"}, {"forget", "alice"}} {
		start := time.Now()
		code, out, errOut := historyRun(t, dir, args...)
		if code != 1 || out != "" || !strings.HasPrefix(errOut, want) || strings.Count(errOut, "\n") != 1 {
			t.Fatalf("%q: exit %d, stdout %q, stderr %q; want 1 and one line starting %q", args, code, out, errOut, want)
		}
		if took := time.Since(start); took > 5*time.Second {
			t.Errorf("%q took %v to give up", args, took)
		}
	}
	var buf bytes.Buffer
	if n, err := held.Export("#lobby", &buf); err != nil || n != 4 {
		t.Fatalf("#lobby through the lock: %d events, %v", n, err)
	}
}

// The subcommand finds data_dir as the daemon does, and refuses when
// history is kept in memory.
func TestHistoryCommand(t *testing.T) {
	isolateEnv(t)
	dir := historyDataDir(t)
	code, out, errOut := runCmd("history", "stats", "--data-dir", dir)
	if code != 0 || !strings.Contains(out, "#lobby") {
		t.Errorf("stats --data-dir: exit %d, %q %q", code, out, errOut)
	}
	t.Setenv("LIVECHAT_DATA_DIR", dir)
	code, out, _ = runCmd("history", "export", "#other")
	if code != 0 || len(parseExport(t, out)) != 2 {
		t.Errorf("export with LIVECHAT_DATA_DIR: exit %d, %q", code, out)
	}
	t.Setenv("LIVECHAT_HISTORY_STORE", "memory")
	code, _, errOut = runCmd("history", "stats")
	if code != 1 || !strings.Contains(errOut, `history.store is "memory"`) {
		t.Errorf("with history.store memory: exit %d %q", code, errOut)
	}
	t.Setenv("LIVECHAT_HISTORY_STORE", "")
	code, _, errOut = runCmd("history", "--bogus")
	if code != 2 || !strings.Contains(errOut, "unknown flag") {
		t.Errorf("bad flag: exit %d %q", code, errOut)
	}
	code, _, errOut = runCmd("history", "--help")
	if code != 0 || !strings.Contains(errOut, "livechatd history forget") || !strings.Contains(errOut, "--data-dir") {
		t.Errorf("--help: exit %d %q", code, errOut)
	}
}

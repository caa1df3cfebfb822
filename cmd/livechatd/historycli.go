package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/pflag"

	"github.com/livechat/livechat/configs"
	"github.com/livechat/livechat/daemon/accounts"
	"github.com/livechat/livechat/daemon/historystore"
	"github.com/livechat/livechat/protocol"
	"github.com/livechat/livechat/rooms"
)

// The history subcommand reads and deletes history offline, like the
// accounts subcommand: the daemon holds history.db locked while it runs,
// so these commands only work while it is stopped, and the daemon never
// sees its history change under it.

const historyUsage = `usage: livechatd history stats
       livechatd history export '#ROOM'      a room's history
       livechatd history export ACCOUNT      every private conversation of ACCOUNT
       livechatd history export ID ID        one private conversation, by the two
                                             identities stats shows (a:alice c:x1.7)
       livechatd history delete '#ROOM'      delete a room's history
       livechatd history delete ID ID        delete one private conversation
       livechatd history forget ACCOUNT      delete everything ACCOUNT said, in rooms
                                             and private conversations

export writes one JSON object per line on stdout, oldest first, each with
the "target" it belongs to (a room, or "~" and the two identities), and the
count on stderr. delete and forget remove the text from history.db before
they return. Quote room names: the shell takes # for a comment.
`

// historyCommand runs `livechatd history`: the common flags find the
// config and data_dir the daemon would use, the rest goes to runHistory.
func historyCommand(args []string, stdout, stderr io.Writer) int {
	fs := pflag.NewFlagSet("livechatd history", pflag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, historyUsage+"\nFlags (to find data_dir as the daemon does):\n")
		fs.PrintDefaults()
	}
	configs.RegisterFlags(fs)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			return 0
		}
		fmt.Fprintf(stderr, "livechatd history: %v (see livechatd history --help)\n", err)
		return 2
	}
	path := configs.ConfigPath(fs)
	cfg, err := configs.Load(path, fs)
	if err != nil {
		fmt.Fprintln(stderr, "livechatd history:", err)
		return 2
	}
	if cfg.History.Store != "file" {
		fmt.Fprintf(stderr, "livechatd history: history.store is %q, so no history is stored on disk\n", cfg.History.Store)
		return 1
	}
	return runHistory(fs.Args(), path, cfg.DataDir, stdout, stderr)
}

// runHistory runs "livechatd history ARGS..."; args are the words after
// "history". The store is dataDir/history.db; cfgPath is only used to
// point at the config in messages. It returns the exit status: 0 on
// success, 1 on failure, 2 on a usage error.
func runHistory(args []string, cfgPath, dataDir string, stdout, stderr io.Writer) int {
	if len(args) == 1 && (args[0] == "help" || args[0] == "-h" || args[0] == "--help") {
		fmt.Fprint(stdout, historyUsage)
		return 0
	}
	// Check the words before opening the file: a usage error must not
	// take the lock or create anything.
	var sel historySelection
	ok := len(args) > 0
	if ok {
		switch args[0] {
		case "stats":
			ok = len(args) == 1
		case "export":
			sel, ok = historySelect(args[1:], true)
		case "delete":
			sel, ok = historySelect(args[1:], false)
		case "forget":
			ok = len(args) == 2 && args[1] != ""
		default:
			ok = false
		}
	}
	if !ok {
		fmt.Fprint(stderr, historyUsage)
		return 2
	}
	var account string
	if args[0] == "forget" {
		var err error
		if account, err = historyAccount(args[1]); err != nil {
			historyPrintErr(stderr, err)
			return 1
		}
	}

	path := filepath.Join(dataDir, "history.db")
	store, err := historyOpen(path, cfgPath)
	if err != nil {
		historyPrintErr(stderr, err)
		return 1
	}
	switch args[0] {
	case "stats":
		err = historyStats(store, path, stdout)
	case "export":
		err = historyExport(store, sel, stdout, stderr)
	case "delete":
		err = historyDelete(store, sel, stdout)
	case "forget":
		err = historyForget(store, account, stdout)
	}
	// Deletions are committed, and scrubbed, before they report success;
	// Close only commits what is left (nothing), but a failure is still
	// worth saying.
	if cerr := store.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		historyPrintErr(stderr, err)
		return 1
	}
	return 0
}

// historySelection is what export or delete works on: one target, or
// every conversation one identity takes part in.
type historySelection struct {
	target   string // a room's folded name or a conversation's target
	identity string // when target is "": every conversation of this identity
	label    string // how messages name it
}

// historySelect reads the words after export or delete: '#ROOM', two
// identities, or (export only) one person.
func historySelect(args []string, person bool) (historySelection, bool) {
	switch {
	case len(args) == 1 && protocol.IsRoomName(args[0]):
		if len(args[0]) < 2 {
			return historySelection{}, false
		}
		return historySelection{target: protocol.FoldRoom(args[0]), label: args[0]}, true
	case len(args) == 1 && person:
		id, ok := historyIdentity(args[0])
		return historySelection{identity: id, label: args[0]}, ok
	case len(args) == 2:
		a, okA := historyIdentity(args[0])
		b, okB := historyIdentity(args[1])
		if !okA || !okB || a == b {
			return historySelection{}, false
		}
		t := rooms.ConversationTarget(a, b)
		return historySelection{target: t, label: "the conversation " + strings.TrimPrefix(t, rooms.ConversationPrefix)}, true
	}
	return historySelection{}, false
}

// historyIdentity turns a word into the identity private history names
// people by: "a:" and a folded account, or a connection ("c:...") as
// stats shows it. A bare name is an account.
func historyIdentity(word string) (string, bool) {
	if word == "" || strings.ContainsAny(word, " ,") || protocol.IsRoomName(word) {
		return "", false
	}
	if name, ok := strings.CutPrefix(word, "a:"); ok {
		return "a:" + accounts.Fold(name), name != ""
	}
	if strings.HasPrefix(word, "c:") {
		return word, len(word) > 2
	}
	return "a:" + accounts.Fold(word), true
}

// historyAccount reads forget's account, with or without its "a:".
func historyAccount(word string) (string, error) {
	name := strings.TrimPrefix(word, "a:")
	switch {
	case strings.HasPrefix(word, "c:"):
		return "", fmt.Errorf("%s is a connection, not an account: a guest's messages are tied to no account; delete the conversation instead", word)
	case name == "" || protocol.IsRoomName(name) || strings.ContainsAny(name, " ,:"):
		return "", fmt.Errorf("%q is not an account name", word)
	}
	return name, nil
}

// historyOpen opens an existing store. Like accountsOpen it refuses to
// create one: a missing file almost always means the wrong data_dir.
func historyOpen(path, cfgPath string) (*historystore.Store, error) {
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		where := "data_dir or --data-dir"
		if cfgPath != "" {
			where = "data_dir in " + cfgPath + " or --data-dir"
		}
		return nil, fmt.Errorf("no history store at %s; check %s", path, where)
	}
	// The zero Options run no retention: an admin command deletes only
	// what it was asked to.
	store, err := historystore.Open(path, historystore.Options{})
	if errors.Is(err, historystore.ErrInUse) {
		return nil, fmt.Errorf("%s is in use by a running livechatd; stop it first (or find what else holds it open: fuser -v %s)", path, path)
	}
	return store, err
}

// historyStats prints a table of every target, then the totals and the
// size of the file.
func historyStats(store *historystore.Store, path string, stdout io.Writer) error {
	list, err := store.Stats()
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "TARGET\tEVENTS\tBYTES\tOLDEST\tNEWEST")
	var events, bytes int64
	nrooms, nconvs := 0, 0
	for _, st := range list {
		name := st.Name
		if conv, ok := strings.CutPrefix(name, rooms.ConversationPrefix); ok {
			name = conv
			nconvs++
		} else {
			nrooms++
		}
		events += st.Events
		bytes += st.Bytes
		fmt.Fprintf(tw, "%s\t%d\t%d\t%s\t%s\n", name, st.Events, st.Bytes, historyTime(st.Oldest), historyTime(st.Newest))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	size := int64(-1)
	if fi, err := os.Stat(path); err == nil {
		size = fi.Size()
	}
	_, err = fmt.Fprintf(stdout, "%s, %s, %d events, %s of events and index; %s is %s (%s in use)\n",
		plural(nrooms, "room"), plural(nconvs, "private conversation"), events, humanBytes(bytes),
		path, humanBytes(size), humanBytes(store.DiskBytes()))
	return err
}

func historyTime(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}

func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return fmt.Sprintf("%d %ss", n, what)
}

// humanBytes prints n in bytes up to 10 KiB, else in KiB, MiB or GiB with
// one decimal.
func humanBytes(n int64) string {
	if n < 0 {
		return "unknown"
	}
	if n < 10<<10 {
		return fmt.Sprintf("%d B", n)
	}
	f, unit := float64(n)/(1<<10), "KiB"
	for _, u := range []string{"MiB", "GiB", "TiB"} {
		if f < 1<<10 {
			break
		}
		f, unit = f/(1<<10), u
	}
	return fmt.Sprintf("%.1f %s", f, unit)
}

// historyTargets returns the targets sel names that have events, with
// their stats, by name.
func historyTargets(store *historystore.Store, sel historySelection) ([]historystore.TargetStats, error) {
	list, err := store.Stats()
	if err != nil {
		return nil, err
	}
	var out []historystore.TargetStats
	for _, st := range list {
		if st.Name == sel.target || sel.target == "" && conversationHas(st.Name, sel.identity) {
			out = append(out, st)
		}
	}
	if len(out) == 0 {
		if sel.target == "" {
			return nil, fmt.Errorf("no private conversations of %s in history (livechatd history stats lists them)", sel.label)
		}
		return nil, fmt.Errorf("no history for %s (livechatd history stats lists what there is)", sel.label)
	}
	return out, nil
}

// conversationHas reports whether target is a private conversation id
// takes part in.
func conversationHas(target, id string) bool {
	rest, ok := strings.CutPrefix(target, rooms.ConversationPrefix)
	if !ok {
		return false
	}
	a, b, ok := strings.Cut(rest, " ")
	return ok && (a == id || b == id)
}

// historyExport writes the events of every selected target as JSON lines
// on stdout, each given its target, and the count on stderr, so that
// stdout stays pure JSON lines for jq and scripts.
func historyExport(store *historystore.Store, sel historySelection, stdout, stderr io.Writer) error {
	list, err := historyTargets(store, sel)
	if err != nil {
		return err
	}
	bw := bufio.NewWriter(stdout)
	total := 0
	for _, st := range list {
		tw := &targetWriter{w: bw}
		if tw.field, err = json.Marshal(st.Name); err != nil {
			return err
		}
		n, err := store.Export(st.Name, tw)
		total += n
		if err == nil {
			err = tw.err
		}
		if err != nil {
			return err
		}
	}
	if err := bw.Flush(); err != nil {
		return err
	}
	if sel.target == "" {
		fmt.Fprintf(stderr, "%s in %s\n", plural(total, "event"), plural(len(list), "private conversation"))
	} else {
		fmt.Fprintln(stderr, plural(total, "event"))
	}
	return nil
}

// targetWriter puts a "target" field first in every JSON object line the
// store's export writes, so that the lines of several targets stay apart.
// The store writes whole objects, one per line, each starting with '{'.
type targetWriter struct {
	w     io.Writer
	field []byte // the target as a JSON string
	line  []byte // the line so far, until its newline
	err   error
}

func (t *targetWriter) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 && t.err == nil {
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			t.line = append(t.line, p...)
			break
		}
		t.line = append(t.line, p[:i+1]...)
		p = p[i+1:]
		t.flushLine()
	}
	if t.err != nil {
		return 0, t.err
	}
	return n, nil
}

func (t *targetWriter) flushLine() {
	line := t.line
	t.line = t.line[:0]
	if len(line) < 2 || line[0] != '{' {
		t.err = fmt.Errorf("export: unexpected line from the store: %.40q", line)
		return
	}
	parts := [][]byte{[]byte(`{"target":`), t.field}
	if line[1] != '}' {
		parts = append(parts, []byte(","))
	}
	for _, b := range append(parts, line[1:]) {
		if _, err := t.w.Write(b); err != nil {
			t.err = err
			return
		}
	}
}

// historyDelete deletes the selected target's history and scrubs, so the
// text is gone from the disk when it returns.
func historyDelete(store *historystore.Store, sel historySelection, stdout io.Writer) error {
	list, err := historyTargets(store, sel)
	if err != nil {
		return err
	}
	st := list[0]
	if err := store.Delete(st.Name); err != nil {
		return err
	}
	if err := store.Scrub(); err != nil {
		return err
	}
	_, err = fmt.Fprintf(stdout, "deleted %s of %s\n", plural(int(st.Events), "event"), sel.label)
	return err
}

// historyForget deletes everything account said and scrubs.
func historyForget(store *historystore.Store, account string, stdout io.Writer) error {
	n, err := store.Forget(account)
	if err != nil {
		return err
	}
	// Scrub even when nothing matched now: an earlier deletion may have
	// left text in free pages.
	if err := store.Scrub(); err != nil {
		return err
	}
	_, err = fmt.Fprintf(stdout, "deleted %s sent by %s, in rooms and private conversations\n", plural(n, "event"), account)
	return err
}

// historyPrintErr prints err as one "livechatd history: ..." line. Errors
// from the store already start with "historystore: ".
func historyPrintErr(w io.Writer, err error) {
	msg := strings.TrimPrefix(err.Error(), "historystore: ")
	fmt.Fprintln(w, "livechatd history: "+msg)
}

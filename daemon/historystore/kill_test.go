package historystore

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/livechat/livechat/rooms"
)

// TestKill9 appends in a child process under load and kills it with
// SIGKILL, several times over one file: every event the child was told
// is durable (a Sync returned after it was appended) is there after each
// restart, in order, with its msgid and time, and the events kept are a
// prefix of what was appended (nothing newer survives something older).
// How long before the kill the oldest lost event was appended is logged:
// it measures the interval sync's window, which a loaded machine widens,
// so it is not asserted.
func TestKill9(t *testing.T) {
	if path := os.Getenv("HISTORYSTORE_KILL9_CHILD"); path != "" {
		kill9Child(path)
		return
	}
	if testing.Short() {
		t.Skip("runs a child process")
	}
	path := tempPath(t)
	const targets = 10
	start := 0 // the next index the child appends
	var worst time.Duration
	for round := range 3 {
		cmd := exec.Command(os.Args[0], "-test.run=^TestKill9$")
		cmd.Env = append(os.Environ(), "HISTORYSTORE_KILL9_CHILD="+path, "HISTORYSTORE_KILL9_START="+strconv.Itoa(start))
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		// The child reports every 100th event appended ("a <i>"), and
		// from time to time the newest event a Sync made durable
		// ("s <i>"); note when each report arrived.
		reported := map[int]time.Time{}
		durable := -1
		sc := bufio.NewScanner(out)
		deadline := time.Now().Add(400 * time.Millisecond)
		for sc.Scan() && time.Now().Before(deadline) {
			kind, num, _ := strings.Cut(strings.TrimSpace(sc.Text()), " ")
			i, err := strconv.Atoi(num)
			switch {
			case err != nil:
			case kind == "a":
				reported[i] = time.Now()
			case kind == "s":
				durable = max(durable, i)
			}
		}
		killed := time.Now()
		cmd.Process.Kill()
		cmd.Wait()
		if len(reported) == 0 {
			t.Fatal("the child reported nothing")
		}

		s, err := Open(path, Options{})
		if err != nil {
			t.Fatal(err)
		}
		kept, newest := 0, -1
		for k := range targets {
			name := fmt.Sprintf("#r%d", k)
			got, err := s.Query(name, rooms.Query{Sel: rooms.SelLatest, Limit: 1 << 30})
			if err != nil {
				t.Fatal(err)
			}
			// Target k holds indexes k, k+10, k+20... with no gap.
			for j, e := range got {
				if want := fmt.Sprintf("k%08d", k+j*targets); e.ID != want {
					t.Fatalf("round %d: %s event %d is %s, want %s", round, name, j, e.ID, want)
				}
				if e.Command != "PRIVMSG" || e.Params[1] != "text "+e.ID || e.At.IsZero() {
					t.Fatalf("round %d: %+v", round, e)
				}
			}
			kept += len(got)
			if len(got) > 0 {
				n, _ := strconv.Atoi(got[len(got)-1].ID[1:])
				newest = max(newest, n)
			}
		}
		if newest != kept-1 {
			t.Fatalf("round %d: %d events kept but the newest is %d: not a prefix", round, kept, newest)
		}
		if durable >= kept {
			t.Fatalf("round %d: event %d was synced before the kill, but only %d events are kept", round, durable, kept)
		}
		// kept events are indexes [0, kept) if the prefix holds across
		// targets too (the store commits in append order).
		for i, at := range reported {
			if i >= kept {
				if lost := killed.Sub(at); lost > worst {
					worst = lost
				}
			}
		}
		s.Close()
		t.Logf("round %d: %d events kept, %d reported, synced up to %d", round, kept, len(reported), durable)
		start = kept
	}
	t.Logf("the oldest lost event was appended %v before the kill (sync interval %v)", worst, DefaultSyncInterval)
}

// kill9Child appends to ten targets as fast as it can, reporting every
// 100th index after appending it, until killed.
func kill9Child(path string) {
	s, err := Open(path, Options{})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	i, _ := strconv.Atoi(os.Getenv("HISTORYSTORE_KILL9_START"))
	var mu sync.Mutex // one report line at a time
	w := bufio.NewWriter(os.Stdout)
	report := func(kind string, i int) {
		mu.Lock()
		fmt.Fprintln(w, kind, i)
		w.Flush()
		mu.Unlock()
	}
	var appended atomic.Int64
	appended.Store(int64(i) - 1)
	go func() {
		for {
			time.Sleep(20 * time.Millisecond)
			if n := appended.Load(); n >= 0 && s.Sync() == nil {
				report("s", int(n))
			}
		}
	}()
	for ; ; i++ {
		id := fmt.Sprintf("k%08d", i)
		name := fmt.Sprintf("#r%d", i%10)
		s.Append(name, &rooms.Event{At: rooms.Now(), ID: id, Source: "n!u@h", Command: "PRIVMSG", Params: []string{name, "text " + id}})
		appended.Store(int64(i))
		if i%100 == 0 {
			report("a", i)
		}
		if i%50 == 0 {
			// About 30,000 events a second: load, not a flood beyond
			// what the disk commits.
			time.Sleep(time.Millisecond)
		}
	}
}

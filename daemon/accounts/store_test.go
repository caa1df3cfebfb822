package accounts

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

var bg = context.Background()

// storeImpls runs the shared Store contract against every implementation.
var storeImpls = []struct {
	name string
	open func(t *testing.T) Store
}{
	{"memory", func(t *testing.T) Store { return NewMemoryStore() }},
	{"file", func(t *testing.T) Store {
		s, err := OpenFileStore(filepath.Join(t.TempDir(), "accounts.db"))
		if err != nil {
			t.Fatal(err)
		}
		return s
	}},
}

func TestStoreContract(t *testing.T) {
	for _, impl := range storeImpls {
		t.Run(impl.name, func(t *testing.T) {
			s := impl.open(t)
			defer s.Close()
			created := time.Date(2025, 5, 6, 7, 8, 9, 10, time.UTC)

			if err := s.Create(bg, Account{Name: "Alice", Hash: "h1", Created: created}); err != nil {
				t.Fatal(err)
			}
			for _, n := range []string{"alice", "ALICE", "aLiCe"} {
				if err := s.Create(bg, Account{Name: n, Hash: "h2"}); !errors.Is(err, ErrExists) {
					t.Fatalf("Create(%q) = %v, want ErrExists", n, err)
				}
			}
			got, err := s.Get(bg, "ALICE")
			if err != nil {
				t.Fatal(err)
			}
			want := Account{Name: "Alice", Hash: "h1", Created: created}
			if got != want {
				t.Fatalf("Get = %+v, want %+v (display name kept)", got, want)
			}
			if _, err := s.Get(bg, "bob"); !errors.Is(err, ErrNotFound) {
				t.Fatalf("Get(bob) = %v", err)
			}
			if err := s.SetPassword(bg, "aLICE", "h3"); err != nil {
				t.Fatal(err)
			}
			if got, _ := s.Get(bg, "alice"); got.Hash != "h3" || got.Name != "Alice" || !got.Created.Equal(created) {
				t.Fatalf("after SetPassword: %+v", got)
			}
			if err := s.SetPassword(bg, "bob", "h"); !errors.Is(err, ErrNotFound) {
				t.Fatalf("SetPassword(bob) = %v", err)
			}
			// Non-ASCII letters are not folded: only ASCII is.
			if err := s.Create(bg, Account{Name: "Ärger"}); err != nil {
				t.Fatal(err)
			}
			if err := s.Create(bg, Account{Name: "ärger"}); err != nil {
				t.Fatalf("non-ASCII folded: %v", err)
			}
			if s.Count() != 3 {
				t.Fatalf("Count = %d, want 3", s.Count())
			}
			for _, n := range []string{"", strings.Repeat("x", MaxNameLen+1)} {
				if err := s.Create(bg, Account{Name: n}); !errors.Is(err, ErrInvalidName) {
					t.Fatalf("Create(len %d) = %v", len(n), err)
				}
				if _, err := s.Get(bg, n); !errors.Is(err, ErrNotFound) {
					t.Fatalf("Get(len %d) = %v", len(n), err)
				}
			}
			ctx, cancel := context.WithCancel(bg)
			cancel()
			if err := s.Create(ctx, Account{Name: "carol"}); !errors.Is(err, context.Canceled) {
				t.Fatalf("Create with dead ctx = %v", err)
			}

			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			if _, err := s.Get(bg, "alice"); !errors.Is(err, ErrClosed) {
				t.Fatalf("Get after Close = %v", err)
			}
			if err := s.Create(bg, Account{Name: "dave"}); !errors.Is(err, ErrClosed) {
				t.Fatalf("Create after Close = %v", err)
			}
		})
	}
}

func TestStoreListDelete(t *testing.T) {
	for _, impl := range storeImpls {
		t.Run(impl.name, func(t *testing.T) {
			s := impl.open(t)
			defer s.Close()
			if l, err := s.List(bg); err != nil || len(l) != 0 {
				t.Fatalf("List of empty store = %v, %v", l, err)
			}
			created := time.Date(2025, 5, 6, 7, 8, 9, 0, time.UTC)
			// Insertion order differs from folded order on purpose; "Ärger"
			// sorts last because its first byte (0xC3) is above ASCII.
			for _, n := range []string{"carol", "Ärger", "Bob", "alice"} {
				if err := s.Create(bg, Account{Name: n, Hash: "h-" + n, Created: created}); err != nil {
					t.Fatal(err)
				}
			}
			l, err := s.List(bg)
			if err != nil {
				t.Fatal(err)
			}
			var names []string
			for _, a := range l {
				names = append(names, a.Name)
				if a.Hash != "h-"+a.Name || !a.Created.Equal(created) {
					t.Errorf("List entry %+v: hash or creation time lost", a)
				}
			}
			if got, want := strings.Join(names, ","), "alice,Bob,carol,Ärger"; got != want {
				t.Fatalf("List order %s, want %s (by folded name, display spelling kept)", got, want)
			}

			if err := s.Delete(bg, "BOB"); err != nil {
				t.Fatal(err)
			}
			if _, err := s.Get(bg, "bob"); !errors.Is(err, ErrNotFound) {
				t.Fatalf("Get after Delete = %v", err)
			}
			if s.Count() != 3 {
				t.Fatalf("Count after Delete = %d, want 3", s.Count())
			}
			for _, n := range []string{"bob", "mallory", "", strings.Repeat("x", MaxNameLen+1)} {
				if err := s.Delete(bg, n); !errors.Is(err, ErrNotFound) {
					t.Fatalf("Delete(%q) = %v, want ErrNotFound", n, err)
				}
			}
			if s.Count() != 3 {
				t.Fatalf("Count after failed Deletes = %d, want 3", s.Count())
			}
			// The name is free again.
			if err := s.Create(bg, Account{Name: "bOb"}); err != nil {
				t.Fatalf("re-Create after Delete: %v", err)
			}

			ctx, cancel := context.WithCancel(bg)
			cancel()
			if _, err := s.List(ctx); !errors.Is(err, context.Canceled) {
				t.Fatalf("List with dead ctx = %v", err)
			}
			if err := s.Delete(ctx, "alice"); !errors.Is(err, context.Canceled) {
				t.Fatalf("Delete with dead ctx = %v", err)
			}
			if _, err := s.Get(bg, "alice"); err != nil {
				t.Fatalf("Delete with dead ctx deleted anyway: %v", err)
			}

			s.Close()
			if _, err := s.List(bg); !errors.Is(err, ErrClosed) {
				t.Fatalf("List after Close = %v", err)
			}
			if err := s.Delete(bg, "alice"); !errors.Is(err, ErrClosed) {
				t.Fatalf("Delete after Close = %v", err)
			}
		})
	}
}

func TestStoreConcurrentCreate(t *testing.T) {
	for _, impl := range storeImpls {
		t.Run(impl.name, func(t *testing.T) {
			s := impl.open(t)
			defer s.Close()
			names := []string{"bob", "Bob", "BOB", "bOb", "boB", "BoB", "bOB", "BOb"}
			errs := make([]error, len(names))
			var wg sync.WaitGroup
			start := make(chan struct{})
			for i, n := range names {
				wg.Add(1)
				go func() {
					defer wg.Done()
					<-start
					errs[i] = s.Create(bg, Account{Name: n})
				}()
			}
			close(start)
			wg.Wait()
			wins := 0
			for _, err := range errs {
				switch {
				case err == nil:
					wins++
				case !errors.Is(err, ErrExists):
					t.Fatalf("unexpected %v", err)
				}
			}
			if wins != 1 || s.Count() != 1 {
				t.Fatalf("%d winners, Count %d; want exactly 1", wins, s.Count())
			}
		})
	}
}

func TestFileStoreReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "dir", "accounts.db") // dirs created
	s, err := OpenFileStore(path)
	if err != nil {
		t.Fatal(err)
	}
	created := time.Now().UTC()
	for _, n := range []string{"Alice", "bob"} {
		if err := s.Create(bg, Account{Name: n, Hash: "hash-" + n, Created: created}); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}

	s, err = OpenFileStore(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if s.Count() != 2 {
		t.Fatalf("Count after reopen = %d", s.Count())
	}
	a, err := s.Get(bg, "alice")
	if err != nil || a.Name != "Alice" || a.Hash != "hash-Alice" || !a.Created.Equal(created) {
		t.Fatalf("after reopen: %+v %v", a, err)
	}
	if err := s.Delete(bg, "ALICE"); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s, err = OpenFileStore(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := s.Get(bg, "alice"); !errors.Is(err, ErrNotFound) || s.Count() != 1 {
		t.Fatalf("Delete did not persist: Get = %v, Count = %d", err, s.Count())
	}

	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("file mode %v (%v), want 0600", fi.Mode().Perm(), err)
	}
	di, err := os.Stat(filepath.Dir(path))
	if err != nil || di.Mode().Perm() != 0o700 {
		t.Fatalf("dir mode %v (%v), want 0700", di.Mode().Perm(), err)
	}
}

func TestFileStoreSecondOpenFailsClearly(t *testing.T) {
	path := filepath.Join(t.TempDir(), "accounts.db")
	s, err := OpenFileStore(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()

	// flock is per open file description, so a second open in this
	// process conflicts just as a second daemon would.
	done := make(chan error, 1)
	go func() {
		s2, err := OpenFileStore(path)
		if err == nil {
			s2.Close()
		}
		done <- err
	}()
	select {
	case err := <-done:
		if !errors.Is(err, ErrLocked) || !strings.Contains(err.Error(), path) {
			t.Fatalf("second open: %v, want ErrLocked naming the path", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("second open hangs")
	}
}

func TestFileStoreOpenErrors(t *testing.T) {
	dir := t.TempDir()
	notDB := filepath.Join(dir, "junk")
	if err := os.WriteFile(notDB, []byte(strings.Repeat("not a database ", 1000)), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenFileStore(notDB); err == nil {
		t.Fatal("opened a non-database file")
	}
	if _, err := OpenFileStore(filepath.Join(notDB, "x.db")); err == nil {
		t.Fatal("created a directory under a regular file")
	}
}

// TestFileStoreSurvivesKill: a child process creates accounts and deletes
// one, reports success, and is killed with SIGKILL; the accounts must be
// there and the deleted one gone. This is the "acknowledged means durable"
// contract.
func TestFileStoreSurvivesKill(t *testing.T) {
	path := filepath.Join(t.TempDir(), "accounts.db")
	cmd := exec.Command(os.Args[0], "-test.run=^TestFileStoreKillChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), "ACCOUNTS_KILL_CHILD="+path)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(out)
	acked := false
	for sc.Scan() {
		if sc.Text() == "ACK" {
			acked = true
			break
		}
	}
	cmd.Process.Kill() // SIGKILL: no deferred Close, no flush
	cmd.Wait()
	if !acked {
		t.Fatal("child never acknowledged")
	}
	s, err := OpenFileStore(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for i := range 5 {
		if _, err := s.Get(bg, fmt.Sprintf("user%d", i)); err != nil {
			t.Fatalf("acknowledged account user%d lost: %v", i, err)
		}
	}
	if _, err := s.Get(bg, "doomed"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("acknowledged Delete lost: Get(doomed) = %v", err)
	}
}

func TestFileStoreKillChild(t *testing.T) {
	path := os.Getenv("ACCOUNTS_KILL_CHILD")
	if path == "" {
		t.Skip("helper process for TestFileStoreSurvivesKill")
	}
	s, err := OpenFileStore(path)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		if err := s.Create(bg, Account{Name: fmt.Sprintf("user%d", i)}); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Create(bg, Account{Name: "doomed"}); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete(bg, "doomed"); err != nil {
		t.Fatal(err)
	}
	fmt.Println("ACK")
	select {} // wait to be killed, store still open
}

func TestFold(t *testing.T) {
	for in, want := range map[string]string{
		"":         "",
		"alice":    "alice",
		"Alice":    "alice",
		"ALICE[]":  "alice[]", // ascii casemapping: brackets untouched
		"Ärger":    "Ärger",
		"nick_9AZ": "nick_9az",
	} {
		if got := Fold(in); got != want {
			t.Errorf("Fold(%q) = %q, want %q", in, got, want)
		}
	}
}

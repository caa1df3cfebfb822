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
	"testing"
	"time"
)

var bg = context.Background()

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

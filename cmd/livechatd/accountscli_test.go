package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/livechat/livechat/daemon/accounts"
)

var accountsCtx = context.Background()

// accountsDataDir returns a data dir whose accounts.db holds names, created
// one hour apart from 2024-03-04T05:06:07Z, each with hash "old-hash".
func accountsDataDir(t *testing.T, names ...string) string {
	t.Helper()
	dir := t.TempDir()
	store, err := accounts.OpenFileStore(filepath.Join(dir, "accounts.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	t0 := time.Date(2024, 3, 4, 5, 6, 7, 0, time.UTC)
	for i, n := range names {
		a := accounts.Account{Name: n, Hash: "old-hash", Created: t0.Add(time.Duration(i) * time.Hour)}
		if err := store.Create(accountsCtx, a); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// accountsRun runs runAccounts and returns its status, stdout and stderr.
func accountsRun(t *testing.T, dir, stdin string, args ...string) (int, string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code := runAccounts(args, "", dir, 8, strings.NewReader(stdin), &out, &errOut)
	return code, out.String(), errOut.String()
}

// accountsGet reads an account back through the store, after the CLI has
// closed it.
func accountsGet(t *testing.T, dir, name string) (accounts.Account, error) {
	t.Helper()
	store, err := accounts.OpenFileStore(filepath.Join(dir, "accounts.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	return store.Get(accountsCtx, name)
}

func TestAccountsCLIList(t *testing.T) {
	dir := accountsDataDir(t, "carol", "Bob", "alice")
	code, out, errOut := accountsRun(t, dir, "", "list")
	if code != 0 {
		t.Fatalf("exit %d, stderr %q", code, errOut)
	}
	want := "alice\t2024-03-04T07:06:07Z\n" +
		"Bob\t2024-03-04T06:06:07Z\n" +
		"carol\t2024-03-04T05:06:07Z\n"
	if out != want {
		t.Errorf("stdout:\n%s\nwant:\n%s", out, want)
	}
	if errOut != "3 accounts\n" {
		t.Errorf("stderr %q, want the total", errOut)
	}

	code, out, errOut = accountsRun(t, accountsDataDir(t), "", "list")
	if code != 0 || out != "" || errOut != "0 accounts\n" {
		t.Errorf("empty store: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
}

func TestAccountsCLIDelete(t *testing.T) {
	dir := accountsDataDir(t, "alice", "Bob")
	code, out, errOut := accountsRun(t, dir, "", "delete", "BOB")
	if code != 0 || out != "deleted BOB\n" || errOut != "" {
		t.Fatalf("exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	if _, err := accountsGet(t, dir, "bob"); !errors.Is(err, accounts.ErrNotFound) {
		t.Fatalf("bob still there: %v", err)
	}
	if _, err := accountsGet(t, dir, "alice"); err != nil {
		t.Fatalf("alice gone too: %v", err)
	}

	code, out, errOut = accountsRun(t, dir, "", "delete", "bob")
	if code != 1 || out != "" || errOut != "livechatd accounts: no account named bob\n" {
		t.Fatalf("deleting a missing name: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
}

func TestAccountsCLIPasswd(t *testing.T) {
	dir := accountsDataDir(t, "Alice")
	const pw = "correct horse battery"
	// Only the first line counts, and its \r\n is not part of it.
	code, out, errOut := accountsRun(t, dir, pw+"\r\nsecond line\n", "passwd", "alice")
	if code != 0 || out != "password changed for Alice\n" || errOut != "" {
		t.Fatalf("exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	a, err := accountsGet(t, dir, "alice")
	if err != nil {
		t.Fatal(err)
	}
	match, upgrade, err := accounts.VerifyPassword(pw, a.Hash, accounts.DefaultParams())
	if err != nil || !match || upgrade {
		t.Fatalf("new password: match %v, needs upgrade %v, err %v", match, upgrade, err)
	}

	// Without a final newline the whole input is the password.
	if code, _, errOut := accountsRun(t, dir, "exactly8", "passwd", "alice"); code != 0 {
		t.Fatalf("password without newline: exit %d, stderr %q", code, errOut)
	}
	a, _ = accountsGet(t, dir, "alice")
	if match, _, _ := accounts.VerifyPassword("exactly8", a.Hash, accounts.DefaultParams()); !match {
		t.Fatal("password without newline not stored")
	}
}

// Every refusal leaves the stored hash alone, exits 1 and never prints the
// password.
func TestAccountsCLIPasswdRefused(t *testing.T) {
	dir := accountsDataDir(t, "alice")
	for _, tc := range []struct {
		name, stdin, account, want string
	}{
		{"empty input", "", "alice", "no password on stdin"},
		{"empty line", "\n", "alice", "at least 8 characters"},
		{"too short", "seven77\n", "alice", "at least 8 characters"},
		{"not UTF-8", "password\xff\n", "alice", "valid UTF-8"},
		{"too long", strings.Repeat("p", accounts.MaxPasswordLen+1) + "\n", "alice", "longer than 1024 bytes"},
		{"too long, no newline", strings.Repeat("p", 100000), "alice", "longer than 1024 bytes"},
		{"no such account", "long enough password\n", "mallory", "no account named mallory"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errOut := accountsRun(t, dir, tc.stdin, "passwd", tc.account)
			if code != 1 || out != "" || !strings.Contains(errOut, tc.want) || strings.Count(errOut, "\n") != 1 {
				t.Fatalf("exit %d, stdout %q, stderr %q; want 1 and one line saying %q", code, out, errOut, tc.want)
			}
			if pw := strings.TrimSpace(tc.stdin); pw != "" && strings.Contains(errOut, pw) {
				t.Fatalf("stderr echoes the password: %q", errOut)
			}
			if a, err := accountsGet(t, dir, "alice"); err != nil || a.Hash != "old-hash" {
				t.Fatalf("stored hash changed: %q, %v", a.Hash, err)
			}
		})
	}
}

func TestAccountsCLIUsage(t *testing.T) {
	dir := accountsDataDir(t, "alice")
	for _, args := range [][]string{
		nil,
		{"frobnicate"},
		{"delete"},
		{"passwd"},
		{"delete", ""},
		{"list", "extra"},
		{"delete", "alice", "bob"},
	} {
		code, out, errOut := accountsRun(t, dir, "", args...)
		if code != 2 || out != "" || !strings.HasPrefix(errOut, "usage: livechatd accounts") {
			t.Errorf("%q: exit %d, stdout %q, stderr %q; want 2 and usage on stderr", args, code, out, errOut)
		}
	}
	if _, err := accountsGet(t, dir, "alice"); err != nil {
		t.Fatalf("a usage error changed the store: %v", err)
	}
	code, out, _ := accountsRun(t, dir, "", "--help")
	if code != 0 || !strings.HasPrefix(out, "usage: livechatd accounts") {
		t.Errorf("--help: exit %d, stdout %q", code, out)
	}
}

// A wrong data dir is reported, and no empty database is created there.
func TestAccountsCLIMissingDatabase(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "typo")
	var out, errOut bytes.Buffer
	code := runAccounts([]string{"list"}, "/etc/livechat.yaml", dir, 8, strings.NewReader(""), &out, &errOut)
	want := "livechatd accounts: no account database at " + filepath.Join(dir, "accounts.db") +
		"; check data_dir in /etc/livechat.yaml or --data-dir\n"
	if code != 1 || out.String() != "" || errOut.String() != want {
		t.Fatalf("exit %d, stdout %q, stderr %q; want 1 and %q", code, out.String(), errOut.String(), want)
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the CLI created %s: %v", dir, err)
	}
}

// While the daemon (here: the test) holds the database, the CLI says so in
// one line and exits 1 without touching anything.
func TestAccountsCLILocked(t *testing.T) {
	dir := accountsDataDir(t, "alice")
	path := filepath.Join(dir, "accounts.db")
	held, err := accounts.OpenFileStore(path)
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()

	code, out, errOut := accountsRun(t, dir, "", "delete", "alice")
	want := "livechatd accounts: " + path + " is in use by a running livechatd; stop it first (or "
	if code != 1 || out != "" || !strings.HasPrefix(errOut, want) || strings.Count(errOut, "\n") != 1 {
		t.Fatalf("exit %d, stdout %q, stderr %q; want 1 and one line starting %q", code, out, errOut, want)
	}
	if _, err := held.Get(accountsCtx, "alice"); err != nil {
		t.Fatalf("alice deleted through the lock: %v", err)
	}
}

package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/livechat/livechat/daemon/accounts"
)

// The accounts subcommand edits the account database offline. The daemon
// holds an exclusive lock on accounts.db for as long as it runs, so these
// commands only work while it is stopped; that keeps the daemon's view of
// the accounts (and its cached count) from changing under it.

const accountsUsage = `usage: livechatd accounts list
       livechatd accounts delete NAME
       livechatd accounts passwd NAME   (reads the new password from the first line of stdin)
       livechatd accounts hash          (prints the argon2id hash of the password on stdin,
                                         for the operators list in the config file)
`

// runAccounts runs "livechatd accounts ARGS..."; args are the words after
// "accounts". The database is dataDir/accounts.db; cfgPath is only used to
// point at the config in messages. It returns the exit status: 0 on
// success, 1 on failure, 2 on a usage error.
func runAccounts(args []string, cfgPath, dataDir string, minPasswordLen int, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 1 && (args[0] == "help" || args[0] == "-h" || args[0] == "--help") {
		fmt.Fprint(stdout, accountsUsage)
		return 0
	}
	if len(args) == 1 && args[0] == "hash" {
		return accountsHash(stdin, stdout, stderr)
	}
	var name string
	switch {
	case len(args) == 1 && args[0] == "list":
	case len(args) == 2 && (args[0] == "delete" || args[0] == "passwd") && args[1] != "":
		name = args[1]
	default:
		fmt.Fprint(stderr, accountsUsage)
		return 2
	}

	var password string
	if args[0] == "passwd" {
		// Read and check the password before taking the lock, so that a
		// daemon started while someone is typing is not refused.
		if f, ok := stdin.(*os.File); ok && accountsIsTerminal(f) {
			fmt.Fprintf(stderr, "New password for %s (shown as typed; pipe it in to avoid that): ", name)
		}
		pw, err := accountsReadPassword(stdin)
		if err == nil {
			err = accounts.CheckPassword(pw, minPasswordLen)
		}
		if err != nil {
			accountsPrintErr(stderr, accountsPasswordError(err))
			return 1
		}
		password = pw
	}

	path := filepath.Join(dataDir, "accounts.db")
	store, err := accountsOpen(path, cfgPath)
	if err != nil {
		accountsPrintErr(stderr, err)
		return 1
	}
	ctx := context.Background()
	switch args[0] {
	case "list":
		err = accountsList(ctx, store, stdout, stderr)
	case "delete":
		if err = store.Delete(ctx, name); err == nil {
			fmt.Fprintf(stdout, "deleted %s\n", name)
		}
	case "passwd":
		err = accountsPasswd(ctx, store, name, password, stdout)
	}
	if errors.Is(err, accounts.ErrNotFound) {
		err = fmt.Errorf("no account named %s", name)
	}
	// Writes are committed and synced before Delete and SetPassword return,
	// so a failing Close loses nothing; it is still reported.
	if cerr := store.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		accountsPrintErr(stderr, err)
		return 1
	}
	return 0
}

// accountsHash prints the PHC hash of the password on stdin.
func accountsHash(stdin io.Reader, stdout, stderr io.Writer) int {
	pw, err := accountsReadPassword(stdin)
	if err == nil && pw == "" {
		err = errors.New("empty password")
	}
	if err != nil {
		accountsPrintErr(stderr, accountsPasswordError(err))
		return 1
	}
	hash, err := accounts.HashPassword(pw, accounts.DefaultParams())
	if err != nil {
		accountsPrintErr(stderr, err)
		return 1
	}
	fmt.Fprintln(stdout, hash)
	return 0
}

// accountsOpen opens an existing database. It refuses to create one: a
// missing file almost always means the wrong data_dir, and creating an
// empty database there would hide that.
func accountsOpen(path, cfgPath string) (accounts.Store, error) {
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		where := "data_dir or --data-dir"
		if cfgPath != "" {
			where = "data_dir in " + cfgPath + " or --data-dir"
		}
		return nil, fmt.Errorf("no account database at %s; check %s", path, where)
	}
	store, err := accounts.OpenFileStore(path)
	if errors.Is(err, accounts.ErrLocked) {
		return nil, fmt.Errorf("%s is in use by a running livechatd; stop it first (or find what else holds it open: fuser -v %s)", path, path)
	}
	return store, err
}

// accountsList prints one "NAME<TAB>CREATED" line per account on stdout and
// the total on stderr, so that stdout stays one line per account for
// scripts (wc -l, cut -f1) while a person still sees the count.
func accountsList(ctx context.Context, store accounts.Store, stdout, stderr io.Writer) error {
	list, err := store.List(ctx)
	if err != nil {
		return err
	}
	w := bufio.NewWriter(stdout)
	for _, a := range list {
		fmt.Fprintf(w, "%s\t%s\n", a.Name, a.Created.UTC().Format(time.RFC3339))
	}
	if err := w.Flush(); err != nil {
		return err
	}
	if len(list) == 1 {
		fmt.Fprintln(stderr, "1 account")
	} else {
		fmt.Fprintf(stderr, "%d accounts\n", len(list))
	}
	return nil
}

func accountsPasswd(ctx context.Context, store accounts.Store, name, password string, stdout io.Writer) error {
	// Look the account up first so that a typo costs no hash.
	acct, err := store.Get(ctx, name)
	if err != nil {
		return err
	}
	hash, scramKeys, err := accounts.Credentials(password)
	if err != nil {
		return err
	}
	if err := store.SetPassword(ctx, name, hash, scramKeys); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "password changed for %s\n", acct.Name)
	return nil
}

var errNoPassword = errors.New("no password on stdin; give it as the first line")

// accountsReadPassword returns the first line of r without its "\n" or
// "\r\n". It stops at the newline, so a person at a terminal need not send
// EOF, and its buffer only fits the longest acceptable password plus
// "\r\n", so endless input without a newline is refused rather than read.
func accountsReadPassword(r io.Reader) (string, error) {
	line, err := bufio.NewReaderSize(r, accounts.MaxPasswordLen+2).ReadSlice('\n')
	switch {
	case errors.Is(err, bufio.ErrBufferFull):
		return "", accounts.ErrPasswordTooLong
	case err == io.EOF && len(line) == 0:
		return "", errNoPassword
	case err != nil && err != io.EOF:
		return "", fmt.Errorf("read password from stdin: %w", err)
	}
	line = bytes.TrimSuffix(line, []byte("\n"))
	line = bytes.TrimSuffix(line, []byte("\r"))
	return string(line), nil
}

// accountsPasswordError turns a password rule violation into a message
// saying what the rule is; the password itself is never included.
func accountsPasswordError(err error) error {
	switch {
	case errors.Is(err, accounts.ErrPasswordTooLong):
		return fmt.Errorf("password rejected: longer than %d bytes", accounts.MaxPasswordLen)
	case errors.Is(err, accounts.ErrWeakPassword):
		return fmt.Errorf("password rejected: it must be valid UTF-8 and at least %d characters", accounts.DefaultConfig().MinPasswordLen)
	}
	return err
}

// accountsPrintErr prints err as one "livechatd accounts: ..." line. Errors
// from the accounts package already start with "accounts: ".
func accountsPrintErr(w io.Writer, err error) {
	msg := err.Error()
	if !strings.HasPrefix(msg, "accounts: ") {
		msg = "accounts: " + msg
	}
	fmt.Fprintln(w, "livechatd "+msg)
}

func accountsIsTerminal(f *os.File) bool {
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

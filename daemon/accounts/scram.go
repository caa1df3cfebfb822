package accounts

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/xdg-go/scram"
)

// SCRAM-SHA-256 (RFC 5802, RFC 7677) lets a client prove it knows its
// password without sending it. The server keeps, per account, a salt, an
// iteration count and two keys derived from the password with PBKDF2; a
// login costs it two HMACs, not a hash on the pool.
//
// The keys are derived from the password, so they can only be made when
// the server sees it: at registration, at a password change, and at the
// first password login of an account registered before SCRAM came (Login
// adds them then). An account without them fails SCRAM with ErrNoSCRAM.
//
// The conversation itself is github.com/xdg-go/scram's: the RFC's message
// syntax, nonce checks and constant-time proof comparison are easy to get
// subtly wrong, and that library is small, maintained, and used by the
// MongoDB Go driver. Only the credential lookup and the throttle are ours.

// DefaultSCRAMIterations is the PBKDF2 iteration count of new SCRAM keys.
// RFC 7677 asks for at least 4096. Each login costs the client this many
// iterations and the server none; a registration or migration costs the
// server them once, inside the hashing slot it already holds.
const DefaultSCRAMIterations = 10000

// MinSCRAMIterations is RFC 7677's floor; Config.Validate refuses less.
const MinSCRAMIterations = 4096

// scramSaltLen is the salt's length in bytes.
const scramSaltLen = 16

// ErrNoSCRAM: the account exists but has no SCRAM keys yet; logging in
// once with the password (PLAIN, LOGIN) adds them.
var ErrNoSCRAM = errors.New("accounts: the account has no SCRAM-SHA-256 keys yet; log in once with the password")

// ErrSCRAMProtocol: the client's SCRAM message is malformed or does not
// follow the exchange (wrong nonce, channel binding asked for).
var ErrSCRAMProtocol = errors.New("accounts: malformed SCRAM-SHA-256 message")

// scramPrefix starts Account.SCRAM, so that another mechanism's keys could
// sit beside these one day without being misread.
const scramPrefix = "scram-sha-256$"

// newSCRAM derives the stored form of password's SCRAM keys with a fresh
// salt. It fails only for a password that SASLprep (RFC 4013) refuses,
// such as one with unassigned code points: a SCRAM client could not log
// in with it either, so that account simply keeps to PLAIN.
func newSCRAM(password string, iters int) (string, error) {
	c, err := scram.SHA256.NewClient("", password, "")
	if err != nil {
		return "", err // xdg-go/scram keeps the password out of the message
	}
	var salt [scramSaltLen]byte
	randRead(salt[:])
	cred, err := c.GetStoredCredentialsWithError(scram.KeyFactors{Salt: string(salt[:]), Iters: iters})
	if err != nil {
		return "", err
	}
	enc := base64.RawStdEncoding.EncodeToString
	return scramPrefix + "i=" + strconv.Itoa(iters) + "$" + enc(salt[:]) + "$" + enc(cred.StoredKey) + "$" + enc(cred.ServerKey), nil
}

// parseSCRAM reads Account.SCRAM back.
func parseSCRAM(s string) (scram.StoredCredentials, error) {
	var cred scram.StoredCredentials
	rest, ok := strings.CutPrefix(s, scramPrefix)
	if !ok {
		return cred, ErrNoSCRAM
	}
	f := strings.Split(rest, "$")
	if len(f) != 4 || !strings.HasPrefix(f[0], "i=") {
		return cred, fmt.Errorf("%w: SCRAM keys", ErrMalformedHash)
	}
	iters, err := strconv.Atoi(f[0][2:])
	if err != nil || iters < 1 {
		return cred, fmt.Errorf("%w: SCRAM iteration count", ErrMalformedHash)
	}
	var b [3][]byte
	for i := range b {
		if b[i], err = base64.RawStdEncoding.DecodeString(f[i+1]); err != nil {
			return cred, fmt.Errorf("%w: SCRAM keys", ErrMalformedHash)
		}
	}
	cred.KeyFactors = scram.KeyFactors{Salt: string(b[0]), Iters: iters}
	cred.StoredKey, cred.ServerKey = b[1], b[2]
	return cred, nil
}

// scramCurrent reports whether stored SCRAM keys exist and use iters, so
// that a password login need not derive them again.
func scramCurrent(stored string, iters int) bool {
	cred, err := parseSCRAM(stored)
	return err == nil && cred.Iters == iters
}

// SCRAMLogin is one SCRAM-SHA-256 exchange on the server side. The
// caller feeds it the client's two messages with Step and sends back what
// Step returns. It is not safe for concurrent use, and not reusable.
type SCRAMLogin struct {
	s      *Service
	source string
	conv   *scram.ServerConversation
	steps  int

	// Set by lookup during the first Step.
	ctx  context.Context
	key  string // Fold(name)
	acct Account
	err  error
}

// NewSCRAMLogin starts an exchange for a client from source (as for Login:
// its throttle key, "" for none).
func (s *Service) NewSCRAMLogin(source string) *SCRAMLogin {
	l := &SCRAMLogin{s: s, source: source}
	srv, _ := scram.SHA256.NewServer(l.lookup) // never fails
	l.conv = srv.NewConversation()
	return l
}

// Step takes the client's next message (client-first, then client-final)
// and returns the server's (server-first, then server-final). After the
// second Step, a nil error means the client proved the password of the
// returned account (Hash and SCRAM empty); the caller should still send
// server-final, which proves to the client that the server knew the keys.
//
// Errors: a *ThrottledError (errors.Is ErrThrottled) when the account or
// source is locked out, ErrBadCredentials for an unknown account or a
// wrong proof, ErrNoSCRAM, ErrSCRAMProtocol, or a store error. The
// throttle counts a wrong proof exactly as Login counts a wrong password;
// an unknown account counts at the first step, as Login counts it.
func (l *SCRAMLogin) Step(ctx context.Context, msg string) (string, Account, error) {
	l.steps++
	switch l.steps {
	case 1:
		l.ctx = ctx
		out, err := l.conv.Step(msg)
		l.ctx = nil
		if l.err != nil {
			return "", Account{}, l.err
		}
		if err != nil {
			return "", Account{}, ErrSCRAMProtocol
		}
		return out, Account{}, nil
	case 2:
		// The check is two HMACs, so unlike Login nothing waits for the
		// pool; but the attempt is reserved and counted the same way, so
		// a burst of parallel exchanges gets no more guesses than PLAIN.
		att, retry := l.s.throttle.Begin(l.key, l.source)
		if retry > 0 {
			return "", Account{}, &ThrottledError{RetryAfter: retry}
		}
		out, err := l.conv.Step(msg)
		if err != nil || !l.conv.Valid() {
			att.Failure()
			return "", Account{}, ErrBadCredentials
		}
		att.Success()
		acct := l.acct
		acct.Hash, acct.SCRAM = "", ""
		return out, acct, nil
	}
	return "", Account{}, ErrSCRAMProtocol
}

// Name is the account name the client gave, known after the first Step.
func (l *SCRAMLogin) Name() string { return l.conv.Username() }

// AuthzID is the identity the client asked to act as ("" for its own),
// known after the first Step.
func (l *SCRAMLogin) AuthzID() string { return l.conv.AuthzID() }

// lookup is xdg-go/scram's credential callback: it runs inside the first
// Step, with the name from client-first.
func (l *SCRAMLogin) lookup(name string) (scram.StoredCredentials, error) {
	fail := func(err error) (scram.StoredCredentials, error) {
		l.err = err
		return scram.StoredCredentials{}, err
	}
	if checkName(name) != nil {
		return fail(ErrBadCredentials)
	}
	l.key = Fold(name)
	// Refuse a locked-out client before it gets a salt to work on.
	if retry := l.s.throttle.Check(l.key, l.source); retry > 0 {
		return fail(&ThrottledError{RetryAfter: retry})
	}
	acct, err := l.s.store.Get(l.ctx, l.key)
	switch {
	case errors.Is(err, ErrNotFound):
		// Counted like Login's unknown name, so that SCRAM is no cheaper
		// a way to probe than PLAIN.
		if att, retry := l.s.throttle.Begin(l.key, l.source); retry == 0 {
			att.Failure()
		}
		return fail(ErrBadCredentials)
	case err != nil:
		return fail(err)
	}
	if acct.SCRAM == "" {
		return fail(ErrNoSCRAM)
	}
	cred, err := parseSCRAM(acct.SCRAM)
	if err != nil {
		// Unusable keys are as good as none; the next password login
		// replaces them (scramCurrent is false).
		return fail(fmt.Errorf("%w: %w", ErrNoSCRAM, err))
	}
	l.acct = acct
	return cred, nil
}

package accounts

import "context"

// Lookup returns name's account without its secrets, or ErrNotFound.
func (s *Service) Lookup(ctx context.Context, name string) (Account, error) {
	a, err := s.store.Get(ctx, name)
	a.Hash, a.SCRAM = "", ""
	return a, err
}

// ChangePassword gives the account name a new password, for its owner on
// a logged-in connection: the rules of Register (CheckPassword) and its
// hashing on the fair pool under source. Errors: ErrWeakPassword,
// ErrPasswordTooLong, ErrBusy, ErrNotFound, a context or store error.
func (s *Service) ChangePassword(ctx context.Context, name, password, source string) error {
	if err := CheckPassword(password, s.minLen); err != nil {
		return err
	}
	if _, err := s.store.Get(ctx, name); err != nil {
		return err // a dropped account costs no hash
	}
	var hash, scramKeys string
	var herr error
	err := s.pool.DoFor(ctx, source, func() {
		hash, herr = s.hash(password, s.params)
		scramKeys, _ = newSCRAM(password, s.scramIters) // see Register
	})
	if err != nil {
		return err
	}
	if herr != nil {
		return herr
	}
	return s.store.SetPassword(ctx, name, hash, scramKeys)
}

// SetMulticlient records whether the account's connections share its nick
// and rooms: "on", "off", or "" for the server's default.
func (s *Service) SetMulticlient(ctx context.Context, name, value string) error {
	return s.store.SetMulticlient(ctx, name, value)
}

// Drop deletes the account name and what is kept for it (tokens,
// certificate fingerprints, read markers). ErrNotFound if absent.
func (s *Service) Drop(ctx context.Context, name string) error {
	return s.store.Delete(ctx, name)
}

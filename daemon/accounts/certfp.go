package accounts

import (
	"context"
	"encoding/hex"
	"errors"
	"slices"
	"strings"

	bolt "go.etcd.io/bbolt"
)

// Certificate fingerprints let a client log in with its TLS client
// certificate (SASL EXTERNAL) instead of a password. The owner, logged in,
// adds the SHA-256 fingerprint of a certificate to their account; later
// connections presenting that certificate are that account. A fingerprint
// belongs to at most one account, so a login by fingerprint is never
// ambiguous.
//
// Nothing here is secret: a fingerprint only names a certificate, and the
// TLS handshake has proved that the client holds its private key. So
// there is no hashing and no throttle.

// MaxCertFPs bounds the fingerprints one account keeps.
const MaxCertFPs = 10

var (
	// ErrCertFPTaken: another account has that fingerprint.
	ErrCertFPTaken = errors.New("accounts: that certificate fingerprint belongs to another account")
	// ErrCertFPLimit: the account has MaxCertFPs fingerprints already.
	ErrCertFPLimit = errors.New("accounts: too many certificate fingerprints")
	// ErrBadCertFP: not a SHA-256 fingerprint in hex.
	ErrBadCertFP = errors.New("accounts: not a SHA-256 certificate fingerprint (64 hex digits)")
	// ErrNoCertFPs: the store keeps no certificate fingerprints.
	ErrNoCertFPs = errors.New("accounts: this store keeps no certificate fingerprints")
)

// CertFPStore is a Store that also keeps certificate fingerprints, a
// separate interface as TokenStore is. Fingerprints are given normalised
// (NormalizeCertFP). An account's fingerprints must go with it on Delete.
type CertFPStore interface {
	// AddCertFP gives account the fingerprint fp unless it has limit of
	// them already (ErrCertFPLimit). Adding one it has is a no-op.
	// ErrCertFPTaken if another account has it, ErrNotFound if the
	// account does not exist.
	AddCertFP(ctx context.Context, account, fp string, limit int) error
	// DeleteCertFP removes fp from account. ErrNotFound if it does not
	// have it.
	DeleteCertFP(ctx context.Context, account, fp string) error
	// CertFPs returns account's fingerprints, sorted.
	CertFPs(ctx context.Context, account string) ([]string, error)
	// CertFPOwner returns Fold(name) of the account that has fp.
	// ErrNotFound if none does.
	CertFPOwner(ctx context.Context, fp string) (string, error)
}

// NormalizeCertFP accepts a SHA-256 fingerprint as lower- or upper-case
// hex, with or without colons between bytes, and returns it as 64
// lower-case hex digits.
func NormalizeCertFP(fp string) (string, error) {
	fp = strings.ToLower(strings.ReplaceAll(fp, ":", ""))
	if len(fp) != 64 {
		return "", ErrBadCertFP
	}
	if _, err := hex.DecodeString(fp); err != nil {
		return "", ErrBadCertFP
	}
	return fp, nil
}

func (s *Service) certFPStore() (CertFPStore, error) {
	cs, ok := s.store.(CertFPStore)
	if !ok {
		return nil, ErrNoCertFPs
	}
	return cs, nil
}

// AddCertFP gives account (which the caller has authenticated) the
// certificate fingerprint fp. Errors: ErrBadCertFP, ErrCertFPTaken,
// ErrCertFPLimit, ErrNoCertFPs, ErrNotFound, a store error.
func (s *Service) AddCertFP(ctx context.Context, account, fp string) error {
	cs, err := s.certFPStore()
	if err != nil {
		return err
	}
	if fp, err = NormalizeCertFP(fp); err != nil {
		return err
	}
	if checkName(account) != nil {
		return ErrNotFound
	}
	return cs.AddCertFP(ctx, account, fp, MaxCertFPs)
}

// DeleteCertFP removes fp from account. ErrNotFound if it does not have
// it.
func (s *Service) DeleteCertFP(ctx context.Context, account, fp string) error {
	cs, err := s.certFPStore()
	if err != nil {
		return err
	}
	if fp, err = NormalizeCertFP(fp); err != nil {
		return err
	}
	if checkName(account) != nil {
		return ErrNotFound
	}
	return cs.DeleteCertFP(ctx, account, fp)
}

// CertFPs lists account's fingerprints, sorted.
func (s *Service) CertFPs(ctx context.Context, account string) ([]string, error) {
	cs, err := s.certFPStore()
	if err != nil {
		return nil, err
	}
	if checkName(account) != nil {
		return nil, ErrNotFound
	}
	return cs.CertFPs(ctx, account)
}

// CertFPLogin returns the account that has the fingerprint fp of a
// certificate the client proved it holds. ErrBadCredentials if no
// account has it. The Account has an empty Hash and SCRAM.
func (s *Service) CertFPLogin(ctx context.Context, fp string) (Account, error) {
	cs, err := s.certFPStore()
	if err != nil {
		return Account{}, err
	}
	if fp, err = NormalizeCertFP(fp); err != nil {
		return Account{}, ErrBadCredentials
	}
	owner, err := cs.CertFPOwner(ctx, fp)
	if err == nil {
		var acct Account
		if acct, err = s.store.Get(ctx, owner); err == nil {
			acct.Hash, acct.SCRAM = "", ""
			return acct, nil
		}
	}
	if errors.Is(err, ErrNotFound) {
		return Account{}, ErrBadCredentials
	}
	return Account{}, err
}

// In the file store, bucket cert_fps maps each fingerprint to
// Fold(account), and bucket account_cert_fps holds a bucket per
// Fold(account) whose keys are its fingerprints. One transaction changes
// both, so they always agree. An older livechatd ignores them (schema
// version 1 still).
var (
	bucketCertFPs        = []byte("cert_fps")
	bucketAccountCertFPs = []byte("account_cert_fps")
)

func (s *fileStore) AddCertFP(ctx context.Context, account, fp string, limit int) error {
	if err := s.usable(ctx); err != nil {
		return err
	}
	key, f := []byte(Fold(account)), []byte(fp)
	err := s.db.Update(func(tx *bolt.Tx) error {
		if tx.Bucket(bucketAccounts).Get(key) == nil {
			return ErrNotFound
		}
		index, err := tx.CreateBucketIfNotExists(bucketCertFPs)
		if err != nil {
			return err
		}
		if owner := index.Get(f); owner != nil {
			if string(owner) == string(key) {
				return nil
			}
			return ErrCertFPTaken
		}
		all, err := tx.CreateBucketIfNotExists(bucketAccountCertFPs)
		if err != nil {
			return err
		}
		mine, err := all.CreateBucketIfNotExists(key)
		if err != nil {
			return err
		}
		if mine.Stats().KeyN >= limit {
			return ErrCertFPLimit
		}
		if err := mine.Put(f, nil); err != nil {
			return err
		}
		return index.Put(f, key)
	})
	return s.wrapCertFP(err)
}

func (s *fileStore) DeleteCertFP(ctx context.Context, account, fp string) error {
	if err := s.usable(ctx); err != nil {
		return err
	}
	key, f := []byte(Fold(account)), []byte(fp)
	err := s.db.Update(func(tx *bolt.Tx) error {
		index := tx.Bucket(bucketCertFPs)
		if index == nil || string(index.Get(f)) != string(key) {
			return ErrNotFound
		}
		if err := index.Delete(f); err != nil {
			return err
		}
		if all := tx.Bucket(bucketAccountCertFPs); all != nil && all.Bucket(key) != nil {
			return all.Bucket(key).Delete(f)
		}
		return nil
	})
	return s.wrapCertFP(err)
}

func (s *fileStore) CertFPs(ctx context.Context, account string) ([]string, error) {
	if err := s.usable(ctx); err != nil {
		return nil, err
	}
	key := []byte(Fold(account))
	var out []string
	err := s.db.View(func(tx *bolt.Tx) error {
		if tx.Bucket(bucketAccounts).Get(key) == nil {
			return ErrNotFound
		}
		all := tx.Bucket(bucketAccountCertFPs)
		if all == nil || all.Bucket(key) == nil {
			return nil
		}
		// Byte order of hex digits: sorted.
		return all.Bucket(key).ForEach(func(f, _ []byte) error {
			out = append(out, string(f))
			return nil
		})
	})
	return out, s.wrapCertFP(err)
}

func (s *fileStore) CertFPOwner(ctx context.Context, fp string) (string, error) {
	if err := s.usable(ctx); err != nil {
		return "", err
	}
	var owner string
	err := s.db.View(func(tx *bolt.Tx) error {
		index := tx.Bucket(bucketCertFPs)
		if index == nil {
			return ErrNotFound
		}
		v := index.Get([]byte(fp))
		if v == nil {
			return ErrNotFound
		}
		owner = string(v)
		return nil
	})
	return owner, s.wrapCertFP(err)
}

func (s *fileStore) wrapCertFP(err error) error {
	if errors.Is(err, ErrCertFPTaken) || errors.Is(err, ErrCertFPLimit) {
		return err
	}
	return s.wrap(err)
}

// deleteCertFPs removes account key's fingerprints inside Delete's
// transaction.
func deleteCertFPs(tx *bolt.Tx, key []byte) error {
	all := tx.Bucket(bucketAccountCertFPs)
	if all == nil || all.Bucket(key) == nil {
		return nil
	}
	index := tx.Bucket(bucketCertFPs)
	err := all.Bucket(key).ForEach(func(f, _ []byte) error {
		if index != nil && string(index.Get(f)) == string(key) {
			return index.Delete(f)
		}
		return nil
	})
	if err != nil {
		return err
	}
	return all.DeleteBucket(key)
}

func (m *memStore) AddCertFP(ctx context.Context, account, fp string, limit int) error {
	key := Fold(account)
	unlock, err := m.lock(ctx)
	if err != nil {
		return err
	}
	defer unlock()
	if _, ok := m.byKey[key]; !ok {
		return ErrNotFound
	}
	if owner, ok := m.certOwner[fp]; ok {
		if owner == key {
			return nil
		}
		return ErrCertFPTaken
	}
	if len(m.certFPs[key]) >= limit {
		return ErrCertFPLimit
	}
	if m.certOwner == nil {
		m.certOwner, m.certFPs = make(map[string]string), make(map[string][]string)
	}
	m.certOwner[fp] = key
	m.certFPs[key] = append(m.certFPs[key], fp)
	return nil
}

func (m *memStore) DeleteCertFP(ctx context.Context, account, fp string) error {
	key := Fold(account)
	unlock, err := m.lock(ctx)
	if err != nil {
		return err
	}
	defer unlock()
	if owner, ok := m.certOwner[fp]; !ok || owner != key {
		return ErrNotFound
	}
	delete(m.certOwner, fp)
	m.certFPs[key] = slices.DeleteFunc(m.certFPs[key], func(f string) bool { return f == fp })
	return nil
}

func (m *memStore) CertFPs(ctx context.Context, account string) ([]string, error) {
	key := Fold(account)
	unlock, err := m.rlock(ctx)
	if err != nil {
		return nil, err
	}
	defer unlock()
	if _, ok := m.byKey[key]; !ok {
		return nil, ErrNotFound
	}
	out := slices.Clone(m.certFPs[key])
	slices.Sort(out)
	return out, nil
}

func (m *memStore) CertFPOwner(ctx context.Context, fp string) (string, error) {
	unlock, err := m.rlock(ctx)
	if err != nil {
		return "", err
	}
	defer unlock()
	owner, ok := m.certOwner[fp]
	if !ok {
		return "", ErrNotFound
	}
	return owner, nil
}

// deleteCertFPsLocked forgets account key's fingerprints; m.mu is held.
func (m *memStore) deleteCertFPsLocked(key string) {
	for _, fp := range m.certFPs[key] {
		delete(m.certOwner, fp)
	}
	delete(m.certFPs, key)
}

package jsstore

import (
	"context"
	"encoding/json"
	"errors"
	"slices"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/livechat/livechat/daemon/accounts"
)

var _ accounts.CertFPStore = (*Accounts)(nil)

// Certificate fingerprints take two kinds of value in the data bucket:
//
//   - "c.<data id>": the account's fingerprints, a sorted JSON list;
//   - "f.<fingerprint>": the index, {account, data id} of its owner.
//
// KV has no transaction across keys, so the index is written first (its
// create-if-absent makes a fingerprint one account's) and the list second.
// An entry whose owner is gone (or registered again) is stale, and the
// next AddCertFP takes it over. An entry whose owner exists but whose
// list lacks the fingerprint (the list not written yet, or a crash in
// between) is still the owner's: taking it over would let two accounts
// that race both end up with the fingerprint. CertFPOwner counts a
// fingerprint only when both agree; its owner can add it again or drop
// it.

func certFPsKey(dataID string) string { return "c." + dataID }
func certFPKey(fp string) string      { return "f." + fp }

type certFPOwner struct {
	Account string `json:"account"` // accounts.Fold(name)
	Data    string `json:"data"`
}

func decodeCertFPs(v []byte) ([]string, error) {
	var l []string
	if len(v) == 0 {
		return l, nil
	}
	if err := json.Unmarshal(v, &l); err != nil {
		return nil, wrap("decode certificate fingerprints", err)
	}
	return l, nil
}

// owner reads fp's index entry; found is false if there is none, and
// live whether it belongs to an account that still exists (the same
// registration). An entry is live before its account's list names fp:
// the list is written second, and a claim racing the first would
// otherwise find it stale and take it too. listed says whether the list
// names fp (what a login by fingerprint requires).
func (a *Accounts) owner(ctx context.Context, fp string) (o certFPOwner, rev uint64, found, live bool, err error) {
	o, rev, found, live, _, err = a.ownerListed(ctx, fp)
	return o, rev, found, live, err
}

func (a *Accounts) ownerListed(ctx context.Context, fp string) (o certFPOwner, rev uint64, found, live, listed bool, err error) {
	val, rev, err := a.getData(ctx, certFPKey(fp))
	if err != nil || val == nil {
		return o, 0, false, false, false, err
	}
	if json.Unmarshal(val, &o) != nil {
		return o, rev, true, false, false, nil // unreadable: stale
	}
	rec, _, err := a.load(ctx, o.Account)
	if errors.Is(err, accounts.ErrNotFound) || err == nil && rec.Data != o.Data {
		return o, rev, true, false, false, nil
	}
	if err != nil {
		return o, rev, true, false, false, err
	}
	val, _, err = a.getData(ctx, certFPsKey(o.Data))
	if err != nil {
		return o, rev, true, true, false, err
	}
	l, err := decodeCertFPs(val)
	if err != nil {
		return o, rev, true, true, false, err
	}
	return o, rev, true, true, slices.Contains(l, fp), nil
}

// AddCertFP claims fp's index entry for account, then adds fp to the
// account's list; if the list is full it gives the entry back.
func (a *Accounts) AddCertFP(ctx context.Context, account, fp string, limit int) error {
	ctx, cancel, err := a.begin(ctx)
	if err != nil {
		return err
	}
	defer cancel()
	rec, _, err := a.load(ctx, account)
	if err != nil {
		return err
	}
	mine := certFPOwner{Account: accounts.Fold(account), Data: rec.Data}
	val, err := json.Marshal(mine)
	if err != nil {
		return wrap("encode certificate fingerprint", err)
	}
	var claimed uint64 // the index entry's revision if this call wrote it
	err = retry(ctx, func() error {
		o, rev, found, live, err := a.owner(ctx, fp)
		switch {
		case err != nil:
			return err
		case found && o == mine:
			return nil // ours already (perhaps left by a crash before the list)
		case live:
			return accounts.ErrCertFPTaken
		case found:
			claimed, err = a.data.Update(ctx, certFPKey(fp), val, rev)
		default:
			claimed, err = a.data.Create(ctx, certFPKey(fp), val)
		}
		if err != nil && !conflict(err) {
			err = wrap("claim certificate fingerprint", err)
		}
		return err
	})
	if err != nil {
		return err
	}
	k := certFPsKey(rec.Data)
	err = retry(ctx, func() error {
		val, rev, err := a.getData(ctx, k)
		if err != nil {
			return err
		}
		l, err := decodeCertFPs(val)
		if err != nil {
			return err
		}
		if slices.Contains(l, fp) {
			return nil
		}
		if len(l) >= limit {
			return accounts.ErrCertFPLimit
		}
		l = append(l, fp)
		slices.Sort(l)
		nv, err := json.Marshal(l)
		if err != nil {
			return wrap("encode certificate fingerprints", err)
		}
		return a.putData(ctx, k, nv, rev)
	})
	if err != nil && claimed != 0 {
		// Best effort: a leftover entry is stale anyway, as the list
		// lacks fp.
		_ = a.data.Delete(ctx, certFPKey(fp), jetstream.LastRevision(claimed))
	}
	return err
}

// DeleteCertFP takes fp off account's list, then drops its index entry
// if it is still the account's.
func (a *Accounts) DeleteCertFP(ctx context.Context, account, fp string) error {
	ctx, cancel, err := a.begin(ctx)
	if err != nil {
		return err
	}
	defer cancel()
	rec, _, err := a.load(ctx, account)
	if err != nil {
		return err
	}
	k := certFPsKey(rec.Data)
	err = retry(ctx, func() error {
		val, rev, err := a.getData(ctx, k)
		if err != nil {
			return err
		}
		l, err := decodeCertFPs(val)
		if err != nil {
			return err
		}
		i := slices.Index(l, fp)
		if i < 0 {
			return accounts.ErrNotFound
		}
		l = slices.Delete(l, i, i+1)
		nv, err := json.Marshal(l)
		if err != nil {
			return wrap("encode certificate fingerprints", err)
		}
		return a.putData(ctx, k, nv, rev)
	})
	if err != nil {
		return err
	}
	a.dropIndex(ctx, fp, rec.Data)
	return nil
}

// dropIndex deletes fp's index entry if it names the registration data,
// best effort: a leftover is stale once the list lacks fp.
func (a *Accounts) dropIndex(ctx context.Context, fp, data string) {
	val, rev, err := a.getData(ctx, certFPKey(fp))
	var o certFPOwner
	if err != nil || val == nil || json.Unmarshal(val, &o) != nil || o.Data != data {
		return
	}
	_ = a.data.Delete(ctx, certFPKey(fp), jetstream.LastRevision(rev))
}

// CertFPs returns account's fingerprints, sorted.
func (a *Accounts) CertFPs(ctx context.Context, account string) ([]string, error) {
	ctx, cancel, err := a.begin(ctx)
	if err != nil {
		return nil, err
	}
	defer cancel()
	_, val, _, err := a.loadData(ctx, account, certFPsKey)
	if err != nil {
		return nil, err
	}
	l, err := decodeCertFPs(val)
	if len(l) == 0 {
		l = nil
	}
	return l, err
}

// CertFPOwner returns the folded name of the account that has fp.
func (a *Accounts) CertFPOwner(ctx context.Context, fp string) (string, error) {
	ctx, cancel, err := a.begin(ctx)
	if err != nil {
		return "", err
	}
	defer cancel()
	o, _, _, _, listed, err := a.ownerListed(ctx, fp)
	if err != nil {
		return "", err
	}
	if !listed {
		return "", accounts.ErrNotFound
	}
	return o.Account, nil
}

// deleteCertFPs removes a deleted registration's fingerprints, best
// effort (see Delete).
func (a *Accounts) deleteCertFPs(ctx context.Context, data string) {
	val, _, err := a.getData(ctx, certFPsKey(data))
	if err != nil {
		return
	}
	l, _ := decodeCertFPs(val)
	for _, fp := range l {
		a.dropIndex(ctx, fp, data)
	}
	_ = a.data.Purge(ctx, certFPsKey(data))
}

package jsstore

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/livechat/livechat/daemon/accounts"
)

// An account's login tokens are one JSON value (at most accounts.MaxTokens
// of them): token id → the file store's token record.

func tokensKey(dataID string) string { return "t." + dataID }

type tokenRecord struct {
	Label    string    `json:"label,omitempty"`
	SHA256   string    `json:"sha256"` // hex
	Created  time.Time `json:"created"`
	LastUsed time.Time `json:"last_used"`
	Expires  time.Time `json:"expires"`
}

func decodeTokens(v []byte) (map[string]tokenRecord, error) {
	m := make(map[string]tokenRecord)
	if len(v) == 0 {
		return m, nil
	}
	if err := json.Unmarshal(v, &m); err != nil {
		return nil, wrap("decode tokens", err)
	}
	return m, nil
}

func toToken(id string, r tokenRecord) accounts.Token {
	t := accounts.Token{ID: id, Label: r.Label, Created: r.Created, LastUsed: r.LastUsed, Expires: r.Expires}
	if h, err := hex.DecodeString(r.SHA256); err == nil && len(h) == sha256.Size {
		copy(t.Hash[:], h)
	} // else: a zero hash, which no secret matches
	return t
}

// updateTokens applies change to account's tokens in a compare-and-set
// loop. change returns false to leave the value as it is.
func (a *Accounts) updateTokens(ctx context.Context, account string, change func(map[string]tokenRecord) (bool, error)) error {
	rec, _, err := a.load(ctx, account)
	if err != nil {
		return err
	}
	k := tokensKey(rec.Data)
	return retry(ctx, func() error {
		val, rev, err := a.getData(ctx, k)
		if err != nil {
			return err
		}
		m, err := decodeTokens(val)
		if err != nil {
			return err
		}
		write, err := change(m)
		if err != nil || !write {
			return err
		}
		if len(m) == 0 && rev != 0 {
			err = a.data.Delete(ctx, k, jetstream.LastRevision(rev))
			if err != nil && !conflict(err) {
				err = wrap("delete tokens", err)
			}
			return err
		}
		nv, err := json.Marshal(m)
		if err != nil {
			return wrap("encode tokens", err)
		}
		return a.putData(ctx, k, nv, rev)
	})
}

// AddToken stores t after dropping the tokens expired at now and then the
// least recently used until fewer than keep remain.
func (a *Accounts) AddToken(ctx context.Context, account string, t accounts.Token, keep int, now time.Time) error {
	ctx, cancel, err := a.begin(ctx)
	if err != nil {
		return err
	}
	defer cancel()
	return a.updateTokens(ctx, account, func(m map[string]tokenRecord) (bool, error) {
		var live []string
		for id, r := range m {
			if now.Before(r.Expires) {
				live = append(live, id)
			} else {
				delete(m, id)
			}
		}
		slices.SortFunc(live, func(x, y string) int {
			if c := m[x].LastUsed.Compare(m[y].LastUsed); c != 0 {
				return c
			}
			return strings.Compare(x, y)
		})
		for i := 0; len(live)-i >= keep && i < len(live); i++ {
			delete(m, live[i])
		}
		m[t.ID] = tokenRecord{Label: t.Label, SHA256: hex.EncodeToString(t.Hash[:]), Created: t.Created, LastUsed: t.LastUsed, Expires: t.Expires}
		return true, nil
	})
}

// Token returns account's token id; accounts.ErrNotFound if either is
// absent.
func (a *Accounts) Token(ctx context.Context, account, id string) (accounts.Token, error) {
	ctx, cancel, err := a.begin(ctx)
	if err != nil {
		return accounts.Token{}, err
	}
	defer cancel()
	_, val, _, err := a.loadData(ctx, account, tokensKey)
	if err != nil {
		return accounts.Token{}, err
	}
	m, err := decodeTokens(val)
	if err != nil {
		return accounts.Token{}, err
	}
	r, ok := m[id]
	if !ok {
		return accounts.Token{}, accounts.ErrNotFound
	}
	return toToken(id, r), nil
}

// TouchToken records a use; a token revoked meanwhile, on any node, stays
// revoked (accounts.ErrNotFound).
func (a *Accounts) TouchToken(ctx context.Context, account, id string, used, expires time.Time) error {
	ctx, cancel, err := a.begin(ctx)
	if err != nil {
		return err
	}
	defer cancel()
	return a.updateTokens(ctx, account, func(m map[string]tokenRecord) (bool, error) {
		r, ok := m[id]
		if !ok {
			return false, accounts.ErrNotFound
		}
		r.LastUsed, r.Expires = used, expires
		m[id] = r
		return true, nil
	})
}

// Tokens returns account's tokens, oldest first.
func (a *Accounts) Tokens(ctx context.Context, account string) ([]accounts.Token, error) {
	ctx, cancel, err := a.begin(ctx)
	if err != nil {
		return nil, err
	}
	defer cancel()
	_, val, _, err := a.loadData(ctx, account, tokensKey)
	if errors.Is(err, accounts.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	m, err := decodeTokens(val)
	if err != nil {
		return nil, err
	}
	var out []accounts.Token
	for id, r := range m {
		out = append(out, toToken(id, r))
	}
	slices.SortFunc(out, func(x, y accounts.Token) int {
		if c := x.Created.Compare(y.Created); c != 0 {
			return c
		}
		return strings.Compare(x.ID, y.ID)
	})
	return out, nil
}

// DeleteTokens deletes account's token id, or all for id "", and returns
// how many went.
func (a *Accounts) DeleteTokens(ctx context.Context, account, id string) (int, error) {
	ctx, cancel, err := a.begin(ctx)
	if err != nil {
		return 0, err
	}
	defer cancel()
	n := 0
	err = a.updateTokens(ctx, account, func(m map[string]tokenRecord) (bool, error) {
		n = 0
		if id == "" {
			n = len(m)
			clear(m)
			return n > 0, nil
		}
		if _, ok := m[id]; !ok {
			return false, nil
		}
		n = 1
		delete(m, id)
		return true, nil
	})
	if errors.Is(err, accounts.ErrNotFound) {
		return 0, nil
	}
	return n, err
}

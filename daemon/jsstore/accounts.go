package jsstore

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/livechat/livechat/daemon/accounts"
)

// Accounts is an accounts.Store with read markers and login tokens on two
// KV buckets:
//
//   - <Prefix>_ACCOUNTS: key hex(accounts.Fold(name)), value a JSON record
//     (display name, argon2id hash, creation time, data id);
//   - <Prefix>_ACCOUNT_DATA: "m.<data id>" holds the account's read
//     markers, "t.<data id>" its login tokens, "c.<data id>" its
//     certificate fingerprints, one value each; "f.<fingerprint>" says
//     which account has a fingerprint (certfp.go).
//
// The data id is random and new at each registration, so markers and
// tokens belong to one registration: once the account is deleted they are
// unreachable even if their own deletion (which follows) fails or races
// with a late write, and a new account of the same name starts with none.
//
// Count is kept from a watch on the accounts bucket, so it costs no
// network call; it follows other nodes' registrations within the watch's
// delay and this node's at once. Safe for concurrent use.
type Accounts struct {
	opts  Options
	accts jetstream.KeyValue
	data  jetstream.KeyValue

	closed atomic.Bool
	stop   context.CancelFunc
	done   chan struct{}

	mu    sync.Mutex
	keys  map[string]keyState // every account key seen, deleted ones too
	count int                 // keys that are live
}

// keyState is the newest revision of an account key this node knows of.
// Deleted keys stay as tombstones so that an older revision arriving
// late (this node's own write, or the watch catching up) cannot revive
// them; JetStream keeps their delete markers as long anyway.
type keyState struct {
	rev  uint64
	live bool
}

var (
	_ accounts.Store       = (*Accounts)(nil)
	_ accounts.MarkerStore = (*Accounts)(nil)
	_ accounts.TokenStore  = (*Accounts)(nil)
)

// record is the stored JSON form of an account; the file store's fields
// plus the data id.
type record struct {
	Name    string    `json:"name"`
	Hash    string    `json:"hash"`
	Created time.Time `json:"created"`
	Data    string    `json:"data"`
	SCRAM   string    `json:"scram,omitempty"`
	// Multiclient: the account's choice ("on", "off"), "" for the default.
	Multiclient string `json:"multiclient,omitempty"`
}

// OpenAccounts opens the account buckets, creating them if needed, and
// reads the account keys for Count; ctx bounds all of it. The store
// uses js but does not own its connection: closing the store leaves it
// open.
func OpenAccounts(ctx context.Context, js jetstream.JetStream, o Options) (*Accounts, error) {
	o.defaults()
	if o.MaxReadMarkers <= 0 {
		o.MaxReadMarkers = accounts.MaxReadMarkers
	}
	accts, err := openBucket(ctx, js, o, "ACCOUNTS", "livechat accounts")
	if err != nil {
		return nil, err
	}
	data, err := openBucket(ctx, js, o, "ACCOUNT_DATA", "livechat read markers and login tokens")
	if err != nil {
		return nil, err
	}
	a := &Accounts{opts: o, accts: accts, data: data, keys: make(map[string]keyState), done: make(chan struct{})}
	wctx, stop := context.WithCancel(context.Background())
	a.stop = stop
	// Headers only: Count needs keys and revisions, not password hashes.
	w, err := accts.WatchAll(wctx, jetstream.MetaOnly())
	if err != nil {
		stop()
		return nil, fmt.Errorf("jsstore: watch accounts: %w", err)
	}
	ready := make(chan struct{})
	go a.watch(wctx, w, ready)
	select {
	case <-ready:
		return a, nil
	case <-ctx.Done():
		a.Close()
		return nil, fmt.Errorf("jsstore: reading the accounts: %w", ctx.Err())
	}
}

// watch applies the bucket's changes to the key states. The watcher
// resumes by itself after NATS comes back.
func (a *Accounts) watch(ctx context.Context, w jetstream.KeyWatcher, ready chan struct{}) {
	defer close(a.done)
	defer w.Stop()
	for {
		var e jetstream.KeyValueEntry
		var ok bool
		select {
		case <-ctx.Done():
			return
		case e, ok = <-w.Updates():
		}
		if !ok {
			return // the connection was closed for good
		}
		if e == nil {
			// The end of the initial values, once.
			select {
			case <-ready:
			default:
				close(ready)
			}
			continue
		}
		a.apply(e.Key(), e.Revision(), e.Operation() == jetstream.KeyValuePut)
	}
}

// apply records that key was written (live) or deleted at rev, unless
// this node knows of a later change already. At an equal revision a
// deletion wins: it is this node's own Delete of that revision.
func (a *Accounts) apply(key string, rev uint64, live bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	cur, ok := a.keys[key]
	if ok && (rev < cur.rev || rev == cur.rev && (live || !cur.live)) {
		return
	}
	switch {
	case live && !cur.live:
		a.count++
	case !live && cur.live:
		a.count--
	}
	a.keys[key] = keyState{rev: rev, live: live}
}

// begin checks the store and ctx and bounds ctx by the timeout.
func (a *Accounts) begin(ctx context.Context) (context.Context, context.CancelFunc, error) {
	if a.closed.Load() {
		return nil, nil, accounts.ErrClosed
	}
	if err := ctx.Err(); err != nil {
		return nil, nil, err
	}
	ctx, cancel := withTimeout(ctx, a.opts.Timeout)
	return ctx, cancel, nil
}

func validName(name string) bool { return name != "" && len(name) <= accounts.MaxNameLen }

func newDataID() string {
	var b [12]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func wrap(op string, err error) error {
	switch {
	case err == nil, errors.Is(err, accounts.ErrExists), errors.Is(err, accounts.ErrNotFound):
		return err
	}
	return fmt.Errorf("jsstore: %s: %w", op, err)
}

// Create adds acct; of concurrent Creates of one folded name on any nodes
// exactly one succeeds (the stream accepts one first write of the key)
// and the others get accounts.ErrExists.
func (a *Accounts) Create(ctx context.Context, acct accounts.Account) error {
	if !validName(acct.Name) {
		return accounts.ErrInvalidName
	}
	ctx, cancel, err := a.begin(ctx)
	if err != nil {
		return err
	}
	defer cancel()
	val, err := json.Marshal(record{Name: acct.Name, Hash: acct.Hash, Created: acct.Created, Data: newDataID(), SCRAM: acct.SCRAM})
	if err != nil {
		return wrap("encode account", err)
	}
	k := key(accounts.Fold(acct.Name))
	var rev uint64
	err = retry(ctx, func() error {
		var err error
		rev, err = a.accts.Create(ctx, k, val)
		if conflict(err) {
			return accounts.ErrExists
		}
		return err
	})
	if err != nil {
		return wrap("create account", err)
	}
	a.apply(k, rev, true)
	return nil
}

// load reads the account name (any case) and its revision.
func (a *Accounts) load(ctx context.Context, name string) (record, uint64, error) {
	if !validName(name) {
		return record{}, 0, accounts.ErrNotFound
	}
	var e jetstream.KeyValueEntry
	err := retry(ctx, func() (err error) {
		e, err = a.accts.Get(ctx, key(accounts.Fold(name)))
		return err
	})
	if absent(err) {
		return record{}, 0, accounts.ErrNotFound
	}
	if err != nil {
		return record{}, 0, wrap("get account", err)
	}
	var rec record
	if err := json.Unmarshal(e.Value(), &rec); err != nil {
		return record{}, 0, wrap("decode account", err)
	}
	return rec, e.Revision(), nil
}

func (a *Accounts) Get(ctx context.Context, name string) (accounts.Account, error) {
	if !validName(name) {
		return accounts.Account{}, accounts.ErrNotFound
	}
	ctx, cancel, err := a.begin(ctx)
	if err != nil {
		return accounts.Account{}, err
	}
	defer cancel()
	rec, _, err := a.load(ctx, name)
	if err != nil {
		return accounts.Account{}, err
	}
	return accounts.Account{Name: rec.Name, Hash: rec.Hash, Created: rec.Created, SCRAM: rec.SCRAM, Multiclient: rec.Multiclient}, nil
}

// List reads the whole bucket; it is for admin tools.
func (a *Accounts) List(ctx context.Context) ([]accounts.Account, error) {
	ctx, cancel, err := a.begin(ctx)
	if err != nil {
		return nil, err
	}
	defer cancel()
	type keyed struct {
		key string
		rec record
	}
	var all []keyed
	err = readAll(ctx, a.accts, func() { all = all[:0] }, func(e jetstream.KeyValueEntry) error {
		var rec record
		if err := json.Unmarshal(e.Value(), &rec); err != nil {
			return fmt.Errorf("account %s: %w", e.Key(), err)
		}
		all = append(all, keyed{e.Key(), rec})
		return nil
	})
	if err != nil {
		return nil, wrap("list accounts", err)
	}
	// Hex keeps the byte order of the folded names: the promised order.
	slices.SortFunc(all, func(x, y keyed) int {
		switch {
		case x.key < y.key:
			return -1
		case x.key > y.key:
			return 1
		}
		return 0
	})
	out := make([]accounts.Account, 0, len(all))
	for _, k := range all {
		out = append(out, accounts.Account{Name: k.rec.Name, Hash: k.rec.Hash, Created: k.rec.Created, SCRAM: k.rec.SCRAM, Multiclient: k.rec.Multiclient})
	}
	return out, nil
}

// readAll calls fn with every live entry of kv, after calling reset;
// it starts again (reset first) after a transient error.
func readAll(ctx context.Context, kv jetstream.KeyValue, reset func(), fn func(jetstream.KeyValueEntry) error) error {
	return retry(ctx, func() error {
		reset()
		return readOnce(ctx, kv, fn)
	})
}

func readOnce(ctx context.Context, kv jetstream.KeyValue, fn func(jetstream.KeyValueEntry) error) error {
	w, err := kv.WatchAll(ctx, jetstream.IgnoreDeletes())
	if err != nil {
		return err
	}
	defer w.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case e := <-w.Updates():
			if e == nil {
				return nil
			}
			if err := fn(e); err != nil {
				return err
			}
		}
	}
}

// SetPassword replaces the hash and SCRAM keys with a compare-and-set: a
// concurrent Delete or SetPassword on another node is not undone.
func (a *Accounts) SetPassword(ctx context.Context, name, hash, scram string) error {
	return a.update(ctx, name, "set password", func(rec *record) { rec.Hash, rec.SCRAM = hash, scram })
}

// Rehash replaces the hash and SCRAM keys if the hash is still oldHash;
// the compare-and-set on the revision makes the check and the write one.
func (a *Accounts) Rehash(ctx context.Context, name, oldHash, hash, scram string) error {
	return a.update(ctx, name, "rehash", func(rec *record) {
		if rec.Hash == oldHash {
			rec.Hash, rec.SCRAM = hash, scram
		}
	})
}

// SetMulticlient records the account's multiclient choice, with the same
// compare-and-set as SetPassword.
func (a *Accounts) SetMulticlient(ctx context.Context, name, value string) error {
	return a.update(ctx, name, "set multiclient", func(rec *record) { rec.Multiclient = value })
}

func (a *Accounts) update(ctx context.Context, name, what string, change func(*record)) error {
	if !validName(name) {
		return accounts.ErrNotFound
	}
	ctx, cancel, err := a.begin(ctx)
	if err != nil {
		return err
	}
	defer cancel()
	k := key(accounts.Fold(name))
	return retry(ctx, func() error {
		rec, rev, err := a.load(ctx, name)
		if err != nil {
			return err
		}
		change(&rec)
		val, err := json.Marshal(rec)
		if err != nil {
			return wrap("encode account", err)
		}
		_, err = a.accts.Update(ctx, k, val, rev)
		if err != nil && !conflict(err) {
			return wrap(what, err)
		}
		return err
	})
}

// Delete removes the account (compare-and-set on the revision read, so
// exactly one of concurrent Deletes succeeds and the rest see
// ErrNotFound), then its markers, tokens and certificate fingerprints.
func (a *Accounts) Delete(ctx context.Context, name string) error {
	if !validName(name) {
		return accounts.ErrNotFound
	}
	ctx, cancel, err := a.begin(ctx)
	if err != nil {
		return err
	}
	defer cancel()
	k := key(accounts.Fold(name))
	var gone record
	err = retry(ctx, func() error {
		rec, rev, err := a.load(ctx, name)
		if err != nil {
			return err
		}
		err = a.accts.Delete(ctx, k, jetstream.LastRevision(rev))
		if err == nil {
			gone = rec
			a.apply(k, rev, false)
		} else if !conflict(err) {
			err = wrap("delete account", err)
		}
		return err
	})
	if err != nil {
		return err
	}
	// The account is gone and its data unreachable (a new registration
	// gets a new data id); removing the data only frees the space, so a
	// failure here is not the caller's.
	a.deleteCertFPs(ctx, gone.Data)
	for _, k := range []string{markersKey(gone.Data), tokensKey(gone.Data)} {
		_ = a.data.Purge(ctx, k)
	}
	return nil
}

// Count is the number of live accounts this node knows of, without a
// network call (see Accounts).
func (a *Accounts) Count() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.count
}

// Close stops the watch; later calls return accounts.ErrClosed. The NATS
// connection stays open: it is the caller's.
func (a *Accounts) Close() error {
	if a.closed.Swap(true) {
		return nil
	}
	a.stop()
	<-a.done
	return nil
}

// loadData reads account's record and then one of its data values: dataKey
// gives the key from the data id. A missing value is (nil, 0, nil).
func (a *Accounts) loadData(ctx context.Context, account string, dataKey func(string) string) (k string, val []byte, rev uint64, err error) {
	rec, _, err := a.load(ctx, account)
	if err != nil {
		return "", nil, 0, err
	}
	k = dataKey(rec.Data)
	val, rev, err = a.getData(ctx, k)
	return k, val, rev, err
}

func (a *Accounts) getData(ctx context.Context, k string) ([]byte, uint64, error) {
	var e jetstream.KeyValueEntry
	err := retry(ctx, func() (err error) {
		e, err = a.data.Get(ctx, k)
		return err
	})
	if absent(err) {
		return nil, 0, nil
	}
	if err != nil {
		return nil, 0, wrap("get "+k, err)
	}
	return e.Value(), e.Revision(), nil
}

// putData writes val at k if k is still at rev (0: absent); a lost race
// is a conflict for retry.
func (a *Accounts) putData(ctx context.Context, k string, val []byte, rev uint64) error {
	var err error
	if rev == 0 {
		_, err = a.data.Create(ctx, k, val)
	} else {
		_, err = a.data.Update(ctx, k, val, rev)
	}
	if err != nil && !conflict(err) {
		return wrap("write "+k, err)
	}
	return err
}

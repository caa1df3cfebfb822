package historystore

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// The layout version lives in the meta space. A file written by a newer
// livechatd is refused (its layout may mean something else); an older one
// is migrated step by step, in the transaction that opens it, so a crash
// mid-migration leaves the old version intact.

var (
	keySchema = []byte("schema")
	keyScrub  = []byte("scrub")
)

// schemaVersion is the layout this code writes. A variable so that tests
// can pretend to be a later version with a migration.
var schemaVersion uint32 = 1

// migrations[v] turns a version v layout into v+1.
var migrations = map[uint32]func(w writer) error{}

// ErrNewerSchema: the file was written by a newer livechatd. Opening it
// fails rather than misreading it; upgrade livechatd, or move the file.
var ErrNewerSchema = errors.New("historystore: the history file was written by a newer livechatd")

func encodeVersion(v uint32) []byte { return binary.BigEndian.AppendUint32(nil, v) }

// migrate checks the file's version, brings an older one up to date, and
// stamps a new file.
func migrate(w writer) error {
	v := w.get(spaceMeta, keySchema)
	if v == nil {
		if k, _ := w.cursor(spaceTargets).First(); k != nil {
			return errors.New("historystore: the history file has events but no layout version")
		}
		return w.put(spaceMeta, keySchema, encodeVersion(schemaVersion))
	}
	if len(v) != 4 {
		return errors.New("historystore: corrupt layout version")
	}
	ver := binary.BigEndian.Uint32(v)
	if ver > schemaVersion {
		return fmt.Errorf("%w (file layout %d, this livechatd reads up to %d)", ErrNewerSchema, ver, schemaVersion)
	}
	for ; ver < schemaVersion; ver++ {
		m := migrations[ver]
		if m == nil {
			return fmt.Errorf("historystore: no migration from layout %d", ver)
		}
		if err := m(w); err != nil {
			return fmt.Errorf("historystore: migrating layout %d to %d: %w", ver, ver+1, err)
		}
	}
	return w.put(spaceMeta, keySchema, encodeVersion(schemaVersion))
}

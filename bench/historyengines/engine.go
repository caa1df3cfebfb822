package main

import (
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
)

// engine is the part of a history store that differs between bbolt and
// Pebble: the same workload and the same queries go through it.
type engine interface {
	name() string
	// commit writes recs (events and their msgid index entries) as one
	// group, durable on return when sync is set.
	commit(recs []rec, sync bool) error
	// The four CHATHISTORY shapes over target tid, oldest first into out.
	latest(tid uint32, n int, out *result) error
	before(tid uint32, id []byte, n int, out *result) error
	afterTime(tid uint32, at int64, n int, out *result) error
	around(tid uint32, id []byte, n int, out *result) error
	// deleteBefore removes up to max of tid's oldest events older than at,
	// with their index entries, in one durable group; it returns how many.
	deleteBefore(tid uint32, at int64, max int) (int, error)
	// settle compacts everything (Pebble: flush the memtable, compact the
	// whole keyspace), to see what the data takes at best.
	settle() error
	// quiesce waits for background work (Pebble's compactions and the
	// deletion of the files they made obsolete) so a size is not caught
	// half-way.
	quiesce()
	diskBytes() (int64, error)
	close() error
}

var errNotFound = errors.New("msgid not found")

// seqKey is a sequence number as a key: big-endian sorts numerically.
func seqKey(b []byte, seq uint64) []byte { return binary.BigEndian.AppendUint64(b, seq) }

// idxVal is what the msgid index maps to: the target and the sequence.
func idxVal(b []byte, tid uint32, seq uint64) []byte {
	b = binary.BigEndian.AppendUint32(b, tid)
	return binary.BigEndian.AppendUint64(b, seq)
}

// dirBytes is what a directory's files take on disk (allocated blocks,
// so preallocated or sparse files count as they really cost).
func dirBytes(dir string) (int64, error) {
	var n int64
	err := filepath.WalkDir(dir, func(_ string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		n += allocated(fi)
		return nil
	})
	return n, err
}

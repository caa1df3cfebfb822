package jsstore

import (
	"context"
	"encoding/binary"
	"errors"
	"slices"
	"time"

	"github.com/livechat/livechat/daemon/accounts"
)

// An account's read markers are one value, so that the bound and the
// forward-only rule are decided in one compare-and-set: a sequence of
// (target length byte, target, Unix milliseconds as 8 bytes big-endian),
// sorted by target. Targets are up to 255 bytes of anything.

func markersKey(dataID string) string { return "m." + dataID }

func decodeMarkers(v []byte) map[string]int64 {
	m := make(map[string]int64)
	for len(v) > 0 {
		n := int(v[0])
		if len(v) < 1+n+8 {
			break // torn or foreign: keep what was readable
		}
		m[string(v[1:1+n])] = int64(binary.BigEndian.Uint64(v[1+n:]))
		v = v[1+n+8:]
	}
	return m
}

func encodeMarkers(m map[string]int64) []byte {
	targets := make([]string, 0, len(m))
	size := 0
	for t := range m {
		targets = append(targets, t)
		size += 1 + len(t) + 8
	}
	slices.Sort(targets)
	out := make([]byte, 0, size)
	for _, t := range targets {
		out = append(out, byte(len(t)))
		out = append(out, t...)
		out = binary.BigEndian.AppendUint64(out, uint64(m[t]))
	}
	return out
}

// ReadMarker returns account's marker for target, or the zero time (also
// for an account that does not exist, as the other stores do).
func (a *Accounts) ReadMarker(ctx context.Context, account, target string) (time.Time, error) {
	ctx, cancel, err := a.begin(ctx)
	if err != nil {
		return time.Time{}, err
	}
	defer cancel()
	_, val, _, err := a.loadData(ctx, account, markersKey)
	if errors.Is(err, accounts.ErrNotFound) {
		return time.Time{}, nil
	}
	if err != nil {
		return time.Time{}, err
	}
	ms, ok := decodeMarkers(val)[target]
	if !ok {
		return time.Time{}, nil
	}
	return time.UnixMilli(ms).UTC(), nil
}

// SetReadMarker moves the marker forward only, with a compare-and-set on
// the account's markers: of clients racing on any nodes the latest time
// stays. A new target beyond MaxReadMarkers drops the one read longest
// ago.
func (a *Accounts) SetReadMarker(ctx context.Context, account, target string, at time.Time) (time.Time, bool, error) {
	if len(target) == 0 || len(target) > accounts.MaxMarkerTargetLen {
		return time.Time{}, false, accounts.ErrInvalidTarget
	}
	ctx, cancel, err := a.begin(ctx)
	if err != nil {
		return time.Time{}, false, err
	}
	defer cancel()
	rec, _, err := a.load(ctx, account)
	if err != nil {
		return time.Time{}, false, err
	}
	k := markersKey(rec.Data)
	want := at.UnixMilli()
	var stored int64
	var moved bool
	err = retry(ctx, func() error {
		val, rev, err := a.getData(ctx, k)
		if err != nil {
			return err
		}
		m := decodeMarkers(val)
		old, had := m[target]
		if had && want <= old {
			stored, moved = old, false
			return nil
		}
		for !had && len(m) >= a.opts.MaxReadMarkers {
			oldestT, oldest := "", int64(0)
			for t, ms := range m {
				if oldestT == "" || ms < oldest || ms == oldest && t < oldestT {
					oldestT, oldest = t, ms
				}
			}
			delete(m, oldestT)
		}
		m[target] = want
		if err := a.putData(ctx, k, encodeMarkers(m), rev); err != nil {
			return err
		}
		stored, moved = want, true
		return nil
	})
	if err != nil {
		return time.Time{}, false, err
	}
	return time.UnixMilli(stored).UTC(), moved, nil
}

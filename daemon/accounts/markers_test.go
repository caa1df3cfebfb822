package accounts

import (
	"errors"
	"fmt"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"
)

func TestReadMarkers(t *testing.T) {
	for _, impl := range storeImpls {
		t.Run(impl.name, func(t *testing.T) {
			svc := newTestService(t, impl.open(t), nil)
			for _, n := range []string{"Alice", "bob"} {
				if err := svc.store.Create(bg, Account{Name: n, Hash: "h"}); err != nil {
					t.Fatal(err)
				}
			}
			t0 := time.Date(2025, 3, 4, 5, 6, 7, 891_234_567, time.UTC)
			if at, err := svc.ReadMarker(bg, "alice", "#lobby"); err != nil || !at.IsZero() {
				t.Fatalf("no marker yet: %v, %v", at, err)
			}
			got, moved, err := svc.SetReadMarker(bg, "ALICE", "#lobby", t0)
			if want := t0.Truncate(time.Millisecond); err != nil || !got.Equal(want) || !moved {
				t.Fatalf("set: %v, %v, %v; want %v (milliseconds, as server-time), moved", got, moved, err, want)
			}
			// Backwards, or the same time, leaves the stored one.
			for _, at := range []time.Time{t0.Add(-time.Hour), t0, time.Time{}} {
				if got, moved, err := svc.SetReadMarker(bg, "alice", "#lobby", at); err != nil || moved || !got.Equal(t0.Truncate(time.Millisecond)) {
					t.Fatalf("set %v: %v, %v, %v; want the stored marker, not moved", at, got, moved, err)
				}
			}
			later := t0.Add(time.Minute)
			if got, moved, _ := svc.SetReadMarker(bg, "alice", "#lobby", later); !got.Equal(later.Truncate(time.Millisecond)) || !moved {
				t.Fatalf("forward: %v, moved %v", got, moved)
			}
			if at, _ := svc.ReadMarker(bg, "Alice", "#lobby"); !at.Equal(later.Truncate(time.Millisecond)) {
				t.Fatalf("read back %v", at)
			}
			// Accounts do not see each other's markers.
			if at, _ := svc.ReadMarker(bg, "bob", "#lobby"); !at.IsZero() {
				t.Fatalf("bob sees alice's marker %v", at)
			}
			if _, _, err := svc.SetReadMarker(bg, "nobody", "#lobby", t0); !errors.Is(err, ErrNotFound) {
				t.Fatalf("unknown account: %v", err)
			}
			for _, target := range []string{"", string(make([]byte, MaxMarkerTargetLen+1))} {
				if _, _, err := svc.SetReadMarker(bg, "alice", target, t0); !errors.Is(err, ErrInvalidTarget) {
					t.Fatalf("target of %d bytes: %v", len(target), err)
				}
			}
			// Deleting the account forgets its markers: a new account of
			// the same name starts with none.
			if err := svc.store.Delete(bg, "alice"); err != nil {
				t.Fatal(err)
			}
			if err := svc.store.Create(bg, Account{Name: "alice", Hash: "h"}); err != nil {
				t.Fatal(err)
			}
			if at, _ := svc.ReadMarker(bg, "alice", "#lobby"); !at.IsZero() {
				t.Fatalf("a re-registered name inherited the marker %v", at)
			}
		})
	}
}

func TestReadMarkersAreBounded(t *testing.T) {
	old := markerLimit
	markerLimit = 5
	t.Cleanup(func() { markerLimit = old })
	for _, impl := range storeImpls {
		t.Run(impl.name, func(t *testing.T) {
			svc := newTestService(t, impl.open(t), nil)
			if err := svc.store.Create(bg, Account{Name: "alice", Hash: "h"}); err != nil {
				t.Fatal(err)
			}
			t0 := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
			// #r0 is read last of all, so it stays though it came first.
			for i := 0; i < 8; i++ {
				at := t0.Add(time.Duration(i) * time.Minute)
				if i == 0 {
					at = t0.Add(time.Hour)
				}
				if _, _, err := svc.SetReadMarker(bg, "alice", fmt.Sprintf("#r%d", i), at); err != nil {
					t.Fatal(err)
				}
			}
			kept := 0
			for i := 0; i < 8; i++ {
				at, _ := svc.ReadMarker(bg, "alice", fmt.Sprintf("#r%d", i))
				if !at.IsZero() {
					kept++
				}
				if gone := i >= 1 && i <= 3; gone != at.IsZero() {
					t.Errorf("#r%d: marker %v; want the oldest three (#r1-#r3) dropped", i, at)
				}
			}
			if kept != 5 {
				t.Fatalf("kept %d markers, want 5", kept)
			}
			// Moving an existing marker forward at the limit drops nothing.
			if _, _, err := svc.SetReadMarker(bg, "alice", "#r4", t0.Add(2*time.Hour)); err != nil {
				t.Fatal(err)
			}
			if at, _ := svc.ReadMarker(bg, "alice", "#r5"); at.IsZero() {
				t.Fatal("updating a marker dropped another")
			}
		})
	}
}

func TestReadMarkersLastAcrossRestarts(t *testing.T) {
	path := filepath.Join(t.TempDir(), "accounts.db")
	s, err := OpenFileStore(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Create(bg, Account{Name: "alice", Hash: "h"}); err != nil {
		t.Fatal(err)
	}
	at := time.Date(2025, 6, 7, 8, 9, 10, 123_000_000, time.UTC)
	if _, _, err := s.(MarkerStore).SetReadMarker(bg, "alice", "#lobby", at); err != nil {
		t.Fatal(err)
	}
	s.Close()
	if _, err := s.(MarkerStore).ReadMarker(bg, "alice", "#lobby"); !errors.Is(err, ErrClosed) {
		t.Fatalf("read after close: %v", err)
	}
	s, err = OpenFileStore(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if got, err := s.(MarkerStore).ReadMarker(bg, "alice", "#lobby"); err != nil || !got.Equal(at) {
		t.Fatalf("after reopening: %v, %v; want %v", got, err, at)
	}
}

// storeWithoutMarkers hides the markers of a store, as a third-party Store
// would lack them.
type storeWithoutMarkers struct{ Store }

func TestServiceWithoutMarkerStore(t *testing.T) {
	svc := newTestService(t, storeWithoutMarkers{NewMemoryStore()}, nil)
	if _, _, err := svc.SetReadMarker(bg, "alice", "#lobby", time.Now()); !errors.Is(err, ErrNoMarkers) {
		t.Fatalf("got %v, want ErrNoMarkers", err)
	}
}

// BenchmarkSetReadMarker measures moving markers in the file store, from
// many goroutines at once as many readers would: Batch shares the fsyncs.
func BenchmarkSetReadMarker(b *testing.B) {
	s, err := OpenFileStore(filepath.Join(b.TempDir(), "accounts.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	const accounts = 64
	for i := range accounts {
		if err := s.Create(bg, Account{Name: fmt.Sprint("user", i), Hash: "h"}); err != nil {
			b.Fatal(err)
		}
	}
	ms := s.(MarkerStore)
	start := time.Now()
	var n atomic.Int64
	b.SetParallelism(8)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := n.Add(1)
			if _, _, err := ms.SetReadMarker(bg, fmt.Sprint("user", i%accounts), fmt.Sprint("#room", i%16), start.Add(time.Duration(i)*time.Millisecond)); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

package accounts

import (
	"errors"
	"fmt"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"
)

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

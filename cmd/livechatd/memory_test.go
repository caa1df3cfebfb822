package main

import (
	"runtime"
	"runtime/metrics"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

// Garbage left by a burst goes back to the system once the process is
// quiet, without waiting for the collector to come by on its own.
func TestTrimMemoryAfterBurst(t *testing.T) {
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() { defer close(done); trimMemory(zerolog.Nop(), stop) }()
	defer func() { close(stop); <-done }()

	// free is heap memory that holds nothing and is still resident.
	free := []metrics.Sample{{Name: "/memory/classes/heap/free:bytes"}}
	var keep [][]byte
	for range 64 {
		keep = append(keep, make([]byte, 1<<20)) // a burst: 64 MB
	}
	for _, b := range keep {
		b[0] = 1 // resident
	}
	keep = nil
	runtime.GC() // garbage now, and resident until released
	metrics.Read(free)
	if got := free[0].Value.Uint64(); got < 32<<20 {
		t.Skipf("only %d bytes of the burst stayed resident after the GC: nothing to trim", got)
	}

	deadline := time.Now().Add(20 * time.Second)
	for {
		metrics.Read(free)
		if got := free[0].Value.Uint64(); got < 16<<20 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d bytes of free heap still resident, want the burst's released", free[0].Value.Uint64())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

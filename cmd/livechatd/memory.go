package main

import (
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"time"

	"github.com/rs/zerolog"
)

// The Go collector lets the heap grow to about twice what is live before
// it collects (GOGC=100, with goroutine stacks counted as live), and then
// keeps the freed memory resident for the next cycle. For a chat daemon
// that is the wrong trade after a burst: 10,000 clients connecting leave
// their welcome bursts behind as garbage, the connections then sit idle,
// allocate almost nothing, and no collection comes to free it. The
// daemon's resident memory then depended on when the last collection ran
// (RSS per idle connection 6.0-9.7 KiB in docs/BENCHMARKS.md, 2-4 KiB of
// which was garbage or freed heap kept resident).
//
// trimMemory watches the heap twice a second. When the daemon has gone
// quiet (it allocated less than quietAllocs in the last interval) and the
// heap holds at least trimMin (and a quarter of the live heap) more than
// was live after the last collection, it collects and returns the free
// memory to the operating system at once (debug.FreeOSMemory). A busy
// daemon is never trimmed, its collections come by themselves; a quiet one
// is trimmed once per burst. The cost is two collections a trim (see
// below why two). A daemon allocating just under quietAllocs regrows the
// excess slowly and would be trimmed every few seconds: trimGap keeps
// trims that far apart, a bound on their CPU whatever the load.
const (
	trimInterval = 500 * time.Millisecond
	quietAllocs  = 512 << 10 // bytes allocated in one trimInterval
	trimMin      = 8 << 20
	trimGap      = 30 * time.Second
)

// trimMemory runs until stop is closed.
func trimMemory(log zerolog.Logger, stop <-chan struct{}) {
	samples := []metrics.Sample{
		{Name: "/gc/heap/allocs:bytes"},
		{Name: "/gc/heap/live:bytes"},
		{Name: "/memory/classes/heap/objects:bytes"},
		{Name: "/memory/classes/heap/free:bytes"},
	}
	t := time.NewTicker(trimInterval)
	defer t.Stop()
	var lastAllocs uint64
	var lastTrim time.Time
	for {
		select {
		case <-stop:
			return
		case <-t.C:
		}
		metrics.Read(samples)
		allocs := samples[0].Value.Uint64()
		live := samples[1].Value.Uint64()
		// objects counts garbage not yet collected; free is memory
		// collected but still resident (not yet released).
		resident := samples[2].Value.Uint64() + samples[3].Value.Uint64()
		quiet := allocs-lastAllocs < quietAllocs
		lastAllocs = allocs
		if !quiet || resident < live+max(trimMin, live/4) || time.Since(lastTrim) < trimGap {
			continue
		}
		start := time.Now()
		lastTrim = start
		// Two collections: the first only moves what sync.Pools hold
		// (the writers' 16 KiB coalescing buffers among them, hundreds
		// after a burst) to their victim caches; the second frees them.
		runtime.GC()
		debug.FreeOSMemory()
		log.Debug().Uint64("live", live).Uint64("resident", resident).Dur("took", time.Since(start)).Msg("returned free heap memory to the OS")
		metrics.Read(samples[:1])
		lastAllocs = samples[0].Value.Uint64()
	}
}

package historystore

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/livechat/livechat/rooms"
)

// line returns a chat line of about 80 characters, as people type them.
func line(i int) string {
	s := fmt.Sprintf("%d: the quick brown fox jumps over the lazy dog, again and again ", i)
	return (s + strings.Repeat("z", 80))[:80]
}

func benchEvent(i int, target string, at time.Time) *rooms.Event {
	return &rooms.Event{
		At:      at,
		ID:      fmt.Sprintf("B7QKX2M4PZ5ND3HF%x", i), // the shape of rooms.IDs
		Source:  "somebody!~user@203.0.113.7",
		Account: "somebody",
		Origin:  "a:somebody",
		Command: "PRIVMSG",
		Params:  []string{target, line(i)},
	}
}

// BenchmarkAppend100Rooms: sustained appends across 100 rooms with group
// commit, from appending the first to the last being durable.
func BenchmarkAppend100Rooms(b *testing.B) {
	s, err := Open(filepath.Join(b.TempDir(), "h.db"), Options{MaxPending: 1 << 30})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	names := make([]string, 100)
	for i := range names {
		names[i] = fmt.Sprintf("#room%d", i)
	}
	events := make([]*rooms.Event, b.N)
	now := rooms.Now()
	for i := range events {
		events[i] = benchEvent(i, names[i%100], now)
	}
	var commits int64
	s.opts.Hooks.Committed = func(int, int64, time.Duration) { commits++ }
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	for i, e := range events {
		s.Append(names[i%100], e)
	}
	if err := s.Sync(); err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "msgs/s")
	if d := s.Dropped(); d > 0 {
		b.Fatalf("%d dropped", d)
	}
	b.ReportMetric(float64(commits), "commits")
}

// BenchmarkSyncAlways: what history.sync: always costs a message: Append
// then Sync, from one room and from many at once (sharing commits).
func BenchmarkSyncAlways(b *testing.B) {
	for _, par := range []int{1, 16} {
		b.Run(fmt.Sprintf("rooms=%d", par), func(b *testing.B) {
			s, err := Open(filepath.Join(b.TempDir(), "h.db"), Options{SyncAlways: true})
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			now := rooms.Now()
			b.ReportAllocs()
			b.ResetTimer()
			var wg sync.WaitGroup
			per := b.N/par + 1
			for w := range par {
				wg.Add(1)
				go func() {
					defer wg.Done()
					name := fmt.Sprintf("#room%d", w)
					for i := range per {
						s.Append(name, benchEvent(w*per+i, name, now))
						if err := s.Sync(); err != nil {
							b.Error(err)
							return
						}
					}
				}()
			}
			wg.Wait()
		})
	}
}

// benchEvents is the size of the big target; LIVECHAT_BENCH_HISTORY
// overrides it (a smaller one for a quick run).
func benchEvents(b *testing.B) int {
	if testing.Short() {
		b.Skip("builds a large history")
	}
	if v, err := strconv.Atoi(os.Getenv("LIVECHAT_BENCH_HISTORY")); err == nil && v > 0 {
		return v
	}
	return 1_000_000
}

// BenchmarkQuery: CHATHISTORY on one room of a million events (one in ten
// a JOIN), at random places, as pages of 100.
func BenchmarkQuery(b *testing.B) {
	n := benchEvents(b)
	path := filepath.Join(b.TempDir(), "h.db")
	s, err := Open(path, Options{MaxPending: n + 1})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	base := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	start := time.Now()
	for i := range n {
		e := benchEvent(i, "#big", base.Add(time.Duration(i)*100*time.Millisecond))
		if i%10 == 0 {
			e.Command, e.Params = "JOIN", e.Params[:1]
		}
		s.Append("#big", e)
	}
	if err := s.Sync(); err != nil {
		b.Fatal(err)
	}
	b.Logf("built %d events in %v: %d bytes in the file, %d stored", n, time.Since(start), s.DiskBytes(), s.StoredBytes())
	if os.Getenv("LIVECHAT_BENCH_SCRUB") != "" {
		// A room keeps talking with sync: always during the scrub: how
		// long does its worst Sync wait?
		stop := make(chan struct{})
		worst := make(chan time.Duration)
		go func() {
			var w time.Duration
			for i := 0; ; i++ {
				select {
				case <-stop:
					worst <- w
					return
				case <-time.After(5 * time.Millisecond):
				}
				t0 := time.Now()
				s.Append("#side", benchEvent(i, "#side", rooms.Now()))
				s.Sync()
				w = max(w, time.Since(t0))
			}
		}()
		start = time.Now()
		if err := s.Scrub(); err != nil {
			b.Fatal(err)
		}
		took := time.Since(start)
		close(stop)
		b.Logf("scrubbed in %v: %d bytes in the file; worst Append+Sync meanwhile %v", took, s.DiskBytes(), <-worst)
	}
	id := func(i int) rooms.Bound { return rooms.Bound{ID: fmt.Sprintf("B7QKX2M4PZ5ND3HF%x", i)} }
	at := func(i int) rooms.Bound { return rooms.Bound{At: base.Add(time.Duration(i) * 100 * time.Millisecond)} }
	cases := []struct {
		name string
		q    func(r *rand.Rand) rooms.Query
	}{
		{"Latest100", func(*rand.Rand) rooms.Query { return rooms.Query{Sel: rooms.SelLatest, Limit: 100} }},
		{"BeforeMsgid100", func(r *rand.Rand) rooms.Query {
			return rooms.Query{Sel: rooms.SelBefore, A: id(r.IntN(n)), Limit: 100}
		}},
		{"AfterTime100", func(r *rand.Rand) rooms.Query {
			return rooms.Query{Sel: rooms.SelAfter, A: at(r.IntN(n)), Limit: 100}
		}},
		{"Around100", func(r *rand.Rand) rooms.Query {
			return rooms.Query{Sel: rooms.SelAround, A: id(r.IntN(n)), Limit: 100}
		}},
		{"BetweenMsgids100", func(r *rand.Rand) rooms.Query {
			x := r.IntN(n - 1000)
			return rooms.Query{Sel: rooms.SelBetween, A: id(x), B: id(x + 1000), Limit: 100}
		}},
		{"BeforeTime100Events", func(r *rand.Rand) rooms.Query {
			return rooms.Query{Sel: rooms.SelBefore, A: at(r.IntN(n)), Limit: 100, Events: true}
		}},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			r := rand.New(rand.NewPCG(1, 2))
			qs := make([]rooms.Query, 1024)
			for i := range qs {
				qs[i] = c.q(r)
			}
			b.ReportAllocs()
			b.ResetTimer()
			for i := range b.N {
				got, err := s.Query("#big", qs[i%len(qs)])
				if err != nil || len(got) == 0 {
					b.Fatalf("%+v: %d events, %v", qs[i%len(qs)], len(got), err)
				}
			}
		})
	}
}

// BenchmarkDiskCost: what one chat line costs on disk: 100,000 lines of 80
// characters in 10 rooms, the file's size divided by the lines, as written
// and after a scrub (the compact copy).
func BenchmarkDiskCost(b *testing.B) {
	const lines = 100_000
	for range b.N {
		path := filepath.Join(b.TempDir(), "h.db")
		s, err := Open(path, Options{MaxPending: lines + 1})
		if err != nil {
			b.Fatal(err)
		}
		now := rooms.Now()
		for i := range lines {
			name := fmt.Sprintf("#room%d", i%10)
			s.Append(name, benchEvent(i, name, now.Add(time.Duration(i)*time.Millisecond)))
		}
		s.Sync()
		b.ReportMetric(float64(s.StoredBytes())/lines, "stored-B/msg")
		b.ReportMetric(float64(s.DiskBytes())/lines, "file-B/msg")
		if fi, err := os.Stat(path); err == nil {
			b.ReportMetric(float64(fi.Size())/lines, "ls-B/msg")
		}
		if err := s.Scrub(); err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(float64(s.DiskBytes())/lines, "scrubbed-B/msg")
		s.Close()
	}
}

// BenchmarkCommitSmall: what a group commit costs at chat rates, where
// each 10 ms commit carries a few events (fanout50x20: 1,000 messages a
// second in 50 rooms, about 10 a commit). One op is one commit of 10
// events in 10 of 50 rooms of a file that already holds 50,000; cpu-us
// is the process's user+system CPU per commit, which is what the daemon
// pays (fdatasync's kernel work included, the disk's wait not).
func BenchmarkCommitSmall(b *testing.B) {
	s, err := Open(filepath.Join(b.TempDir(), "h.db"), Options{MaxPending: 1 << 20, SyncInterval: time.Hour})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	const rooms_, perCommit, preload = 50, 10, 50_000
	names := make([]string, rooms_)
	for i := range names {
		names[i] = fmt.Sprintf("#room%d", i)
	}
	now := rooms.Now()
	i := 0
	for ; i < preload; i++ {
		s.Append(names[i%rooms_], benchEvent(i, names[i%rooms_], now))
	}
	if err := s.Sync(); err != nil {
		b.Fatal(err)
	}
	events := make([]*rooms.Event, b.N*perCommit)
	for j := range events {
		events[j] = benchEvent(i+j, names[(i+j)%rooms_], now)
	}
	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := cpuTime()
	for n := range b.N {
		for j := range perCommit {
			k := n*perCommit + j
			s.Append(names[(i+k)%rooms_], events[k])
		}
		if err := s.Sync(); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64((cpuTime()-cpu0).Microseconds())/float64(b.N), "cpu-us/commit")
}

// cpuTime is the process's user and system CPU so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// Command historyengines measures bbolt and Pebble as the embedded store
// for livechat's room history (issue 13): group-committed small appends,
// the CHATHISTORY read shapes over a target of a million events, disk cost
// and retention. It prints markdown tables (medians over rounds) on
// stdout and progress on stderr. See README.md.
package main

import (
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

var (
	flagEngines   = flag.String("engines", "bbolt,pebble", "engines to compare: bbolt (a bucket per target), bbolt-flat (one bucket, target+sequence keys), bbolt-default (bbolt with its default options), pebble")
	flagDir       = flag.String("dir", "", "where the stores are made (default: a temp dir; put it on the disk data_dir would use, not tmpfs)")
	flagRounds    = flag.Int("rounds", 3, "rounds of the write and read measurements; medians are printed")
	flagWriteDur  = flag.Duration("write-dur", time.Second, "how long each write configuration runs per round")
	flagRate      = flag.Int("rate", 50000, "events/s offered in the timed group-commit configurations")
	flagTargets   = flag.Int("targets", 100, "rooms and conversations written to")
	flagBig       = flag.Int("events", 1000000, "events in the queried target (as many again go to the other targets, interleaved)")
	flagPhases    = flag.String("phases", "write,read,retention", "what to run")
	flagRandIDs   = flag.Bool("random-ids", false, "fully random msgids instead of rooms.IDs' prefix+counter (an index that grows everywhere)")
	flagQueries   = flag.Int("queries", 2000, "queries of each shape per round")
	flagMemtable  = flag.Uint64("pebble-memtable", 0, "Pebble's memtable size in MiB (0: its default, 4 MiB)")
	flagRetention = flag.Float64("retention-frac", 0.1, "fraction of the oldest history retention deletes")
)

const limit = 100 // events per CHATHISTORY request

func main() {
	flag.Parse()
	root := *flagDir
	if root == "" {
		d, err := os.MkdirTemp("", "historyengines-")
		if err != nil {
			fatal(err)
		}
		root = d
		tempRoot = d
		defer os.RemoveAll(d)
	}
	engines := strings.Split(*flagEngines, ",")
	phases := map[string]bool{}
	for _, p := range strings.Split(*flagPhases, ",") {
		phases[p] = true
	}
	cpu0 := sampleCPU()
	start := time.Now()
	psiCPU, psiIO := pressure("cpu"), pressure("io")
	logf("historyengines: engines %v, %d rounds, dir %s, GOMAXPROCS %d, load %s", engines, *flagRounds, root, runtime.GOMAXPROCS(0), loadavg())

	if phases["write"] {
		writePhase(root, engines)
	}
	if phases["read"] || phases["retention"] {
		readPhase(root, engines, phases["read"], phases["retention"])
	}
	cpu1 := sampleCPU()
	el := time.Since(start)
	fmt.Printf("\nRun: %s, %d rounds, this process used %.2f cores on average, other processes %.2f of the %d (from /proc/stat); some task waited for CPU %.0f%% and for I/O %.0f%% of the time (/proc/pressure); load average at the end %s.\n",
		el.Round(time.Second), *flagRounds, oursCores(cpu0, cpu1), othersCores(cpu0, cpu1), runtime.NumCPU(),
		(pressure("cpu")-psiCPU)/float64(el.Microseconds())*100, (pressure("io")-psiIO)/float64(el.Microseconds())*100, loadavg())
}

func open(name, dir string) (engine, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	switch name {
	case "bbolt":
		return openBolt(dir, true, false, *flagRandIDs)
	case "bbolt-default":
		return openBolt(dir, false, false, *flagRandIDs)
	case "bbolt-flat":
		return openBolt(dir, true, true, *flagRandIDs)
	case "pebble":
		return openPebble(dir, *flagMemtable<<20)
	}
	return nil, fmt.Errorf("unknown engine %q", name)
}

// ---- writes ----

type wcfg struct {
	label    string
	batch    int           // fixed group size, committed back to back
	interval time.Duration // or: a group every interval of what arrived
	rate     int           // events/s offered to the interval committer; 0 = as fast as it takes them
}

type wres struct {
	events  int
	elapsed time.Duration
	commits []time.Duration // commit latency per group
	lags    []time.Duration // from an event's arrival to its group being durable (interval configs)
	groups  int
	written int64 // bytes the kernel was asked to write (write amplification)
	file    int64
	stalls  int64
	stalled time.Duration
}

func writeConfigs() []wcfg {
	return []wcfg{
		{label: "group of 1 (sync: always, one writer)", batch: 1},
		{label: "groups of 100", batch: 100},
		{label: "groups of 1,000", batch: 1000},
		{label: fmt.Sprintf("every 1 ms, %d/s offered", *flagRate), interval: time.Millisecond, rate: *flagRate},
		{label: fmt.Sprintf("every 10 ms, %d/s offered", *flagRate), interval: 10 * time.Millisecond, rate: *flagRate},
		{label: fmt.Sprintf("every 100 ms, %d/s offered", *flagRate), interval: 100 * time.Millisecond, rate: *flagRate},
		{label: fmt.Sprintf("every 10 ms, %d/s offered", 2**flagRate), interval: 10 * time.Millisecond, rate: 2 * *flagRate},
	}
}

func writePhase(root string, engines []string) {
	cfgs := writeConfigs()
	res := map[string][]wres{} // engine+cfg -> rounds
	n := 0
	for round := range *flagRounds {
		for ci, c := range cfgs {
			order := engines
			if (round+ci)%2 == 1 { // alternate who goes first: the machine's load drifts
				order = reversed(engines)
			}
			for _, en := range order {
				n++
				dir := filepath.Join(root, fmt.Sprintf("w%d", n))
				e, err := open(en, dir)
				if err != nil {
					fatal(err)
				}
				r := runWrite(e, c)
				if p, ok := e.(*pebbleEngine); ok {
					r.stalls, r.stalled = p.stallStats()
				}
				r.file, _ = e.diskBytes()
				e.close()
				os.RemoveAll(dir)
				res[en+c.label] = append(res[en+c.label], r)
				logf("round %d %-14s %-40s %9.0f ev/s  commit p50 %v p99 %v  groups %d  load %s", round+1, en, c.label,
					float64(r.events)/r.elapsed.Seconds(), pct(r.commits, 50), pct(r.commits, 99), r.groups, loadavg())
			}
		}
	}
	fmt.Printf("\n### Writes: group commit with fsync (median of %d rounds, %v each, %d targets, fresh store each)\n\n", *flagRounds, *flagWriteDur, *flagTargets)
	fmt.Println("| engine | groups | events/s | events/s range | commit p50 | commit p99 | commit max | durable lag p99 | disk written per event | write stalls, all rounds |")
	fmt.Println("|---|---|---|---|---|---|---|---|---|---|")
	for _, c := range cfgs {
		for _, en := range engines {
			rs := res[en+c.label]
			var eps, p50, p99, mx, lag, wpe []float64
			var stalls int64
			var stalled time.Duration
			for _, r := range rs {
				stalled += r.stalled
				eps = append(eps, float64(r.events)/r.elapsed.Seconds())
				p50 = append(p50, us(pct(r.commits, 50)))
				p99 = append(p99, us(pct(r.commits, 99)))
				mx = append(mx, us(pct(r.commits, 100)))
				lag = append(lag, us(pct(r.lags, 99)))
				wpe = append(wpe, float64(r.written)/float64(r.events))
				stalls += r.stalls
			}
			lagS := "-"
			if c.interval > 0 {
				lagS = fmtUs(median(lag))
			}
			stallS := "-"
			if strings.HasPrefix(en, "pebble") {
				stallS = fmt.Sprintf("%d (%v)", stalls, stalled.Round(time.Millisecond))
			}
			fmt.Printf("| %s | %s | **%s** | %s-%s | %s | %s | %s | %s | %.0f B | %s |\n", en, c.label,
				fmtInt(median(eps)), fmtInt(minf(eps)), fmtInt(maxf(eps)),
				fmtUs(median(p50)), fmtUs(median(p99)), fmtUs(median(mx)), lagS, median(wpe), stallS)
		}
	}
}

func runWrite(e engine, c wcfg) wres {
	g := newGen(*flagTargets, time.Now().UnixMilli(), 1, rand.Uint64())
	g.randIDs = *flagRandIDs
	w0 := procWriteBytes()
	var r wres
	if c.batch > 0 {
		recs := make([]rec, 0, c.batch)
		t0 := time.Now()
		for time.Since(t0) < *flagWriteDur {
			recs = recs[:0]
			for range c.batch {
				recs = append(recs, g.nextAny())
			}
			s := time.Now()
			if err := e.commit(recs, true); err != nil {
				fatal(err)
			}
			r.commits = append(r.commits, time.Since(s))
			r.events += len(recs)
			r.groups++
		}
		r.elapsed = time.Since(t0)
	} else {
		r = runInterval(e, g, c)
	}
	r.written = procWriteBytes() - w0
	return r
}

// runInterval is the daemon's committer: events arrive from room actors
// (here one producer at a fixed rate, or as fast as the committer takes
// them, with at most maxPending waiting), and every interval whatever has
// arrived is committed as one group.
func runInterval(e engine, g *gen, c wcfg) wres {
	const maxPending = 200000
	var (
		mu      sync.Mutex
		pending []rec
		arrived []time.Time // arrival of the first event of each chunk in pending, for the lag
		stop    atomic.Bool
		wg      sync.WaitGroup
	)
	t0 := time.Now()
	wg.Add(1)
	go func() {
		defer wg.Done()
		made := 0
		for !stop.Load() {
			want := made + 100
			if c.rate > 0 {
				want = int(float64(c.rate) * time.Since(t0).Seconds())
			}
			mu.Lock()
			full := len(pending) >= maxPending
			if !full && made < want {
				arrived = append(arrived, time.Now())
				for made < want && len(pending) < maxPending {
					pending = append(pending, g.nextAny())
					made++
				}
			}
			mu.Unlock()
			if full || c.rate > 0 {
				time.Sleep(100 * time.Microsecond)
			}
		}
	}()
	var r wres
	var group []rec
	next := t0.Add(c.interval)
	for {
		if d := time.Until(next); d > 0 {
			time.Sleep(d)
		}
		done := time.Since(t0) >= *flagWriteDur
		if done {
			stop.Store(true)
			wg.Wait()
		}
		s := time.Now()
		next = s.Add(c.interval)
		mu.Lock()
		group, pending = pending, group[:0]
		var oldest time.Time
		if len(arrived) > 0 {
			oldest = arrived[0]
		}
		arrived = arrived[:0]
		mu.Unlock()
		if len(group) > 0 {
			if err := e.commit(group, true); err != nil {
				fatal(err)
			}
			end := time.Now()
			r.commits = append(r.commits, end.Sub(s))
			r.lags = append(r.lags, end.Sub(oldest))
			r.events += len(group)
			r.groups++
		}
		if done {
			break
		}
	}
	r.elapsed = time.Since(t0)
	return r
}

// ---- reads, disk cost, retention ----

type anchor struct {
	id []byte
	at int64
}

func readPhase(root string, engines []string, reads, retention bool) {
	type qres struct {
		p50, p99, allocs, bytes []float64
	}
	shapes := []string{"LATEST 100", "BEFORE msgid 100", "AFTER time 100", "AROUND msgid 100"}
	type loaded struct {
		e        engine
		anchors  []anchor
		gen      *gen
		loadTime time.Duration
		loadW    int64
		size     int64
	}
	stores := map[string]*loaded{}
	for _, en := range engines {
		dir := filepath.Join(root, "r-"+en)
		e, err := open(en, dir)
		if err != nil {
			fatal(err)
		}
		l := &loaded{e: e}
		l.gen, l.anchors, l.loadTime, l.loadW = load(e)
		e.quiesce()
		l.size, _ = e.diskBytes()
		stores[en] = l
		logf("loaded %s: %d events in %v (%.0f/s), %s on disk, load %s", en, 2**flagBig, l.loadTime.Round(time.Millisecond),
			float64(2**flagBig)/l.loadTime.Seconds(), mib(l.size), loadavg())
	}
	if reads {
		qs := map[string]*qres{}
		for round := range *flagRounds {
			for si, shape := range shapes {
				order := engines
				if (round+si)%2 == 1 {
					order = reversed(engines)
				}
				for _, en := range order {
					l := stores[en]
					p50, p99, allocs, bytes := runQueries(l.e, shape, l.anchors)
					q := qs[en+shape]
					if q == nil {
						q = &qres{}
						qs[en+shape] = q
					}
					q.p50 = append(q.p50, p50)
					q.p99 = append(q.p99, p99)
					q.allocs = append(q.allocs, allocs)
					q.bytes = append(q.bytes, bytes)
					logf("round %d %-14s %-18s p50 %6.1f µs p99 %6.1f µs %5.0f allocs %7.0f B", round+1, en, shape, p50, p99, allocs, bytes)
				}
			}
		}
		fmt.Printf("\n### Reads: one target of %d events among %d more in %d other targets (median of %d rounds × %d queries each)\n\n",
			*flagBig, *flagBig, *flagTargets-1, *flagRounds, *flagQueries)
		fmt.Println("| engine | query | µs p50 | µs p99 | allocs/query | bytes allocated/query |")
		fmt.Println("|---|---|---|---|---|---|")
		for _, shape := range shapes {
			for _, en := range engines {
				q := qs[en+shape]
				fmt.Printf("| %s | %s | %.1f | %.1f | %.0f | %.0f |\n", en, shape, median(q.p50), median(q.p99), median(q.allocs), median(q.bytes))
			}
		}
	}

	fmt.Printf("\n### Disk: %d events of ~%d bytes encoded (key and index entry not counted)\n\n", 2**flagBig, avgVal())
	fmt.Println("| engine | bulk load (groups of 10,000, fsync each) | written to disk per event | on disk after load (background work done) | per event | after a full compaction | per event |")
	fmt.Println("|---|---|---|---|---|---|---|")
	for _, en := range engines {
		l := stores[en]
		t := time.Now()
		if err := l.e.settle(); err != nil {
			fatal(err)
		}
		settleT := time.Since(t)
		after, _ := l.e.diskBytes()
		n := float64(2 * *flagBig)
		settle := "(a B+tree: nothing to compact) | "
		if _, ok := l.e.(*pebbleEngine); ok {
			settle = fmt.Sprintf("%s (took %v) | %.0f B", mib(after), settleT.Round(time.Millisecond), float64(after)/n)
		}
		fmt.Printf("| %s | %s events/s | %.0f B | %s | %.0f B | %s |\n", en, fmtInt(n/l.loadTime.Seconds()), float64(l.loadW)/n,
			mib(l.size), float64(l.size)/n, settle)
	}

	if retention {
		fmt.Printf("\n### Retention: the oldest %.0f%% of every target deleted by time, in groups of 10,000 deletions with fsync: half while a writer commits groups of 1,000 flat out, half alone, then as many events written again\n\n", *flagRetention*100)
		fmt.Println("| engine | writes before: events/s | commit p99 / max | during deletion: events/s | commit p99 / max | deleted meanwhile | write stalls (time) | on disk: before → after the second half → after writing as many again |")
		fmt.Println("|---|---|---|---|---|---|---|---|")
		for _, en := range engines {
			l := stores[en]
			fmt.Println(retentionRun(en, l.e, l.gen))
		}
	}
	for _, l := range stores {
		l.e.close()
	}
}

// load writes the read data set: target 0 gets every other event, the
// other targets share the rest, so target 0's events are interleaved with
// theirs in time and (for Pebble) in every sstable.
func load(e engine) (*gen, []anchor, time.Duration, int64) {
	g := newGen(*flagTargets, time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).UnixMilli(), 5, 1)
	g.randIDs = *flagRandIDs
	rng := rand.New(rand.NewPCG(2, 3))
	want := map[int]bool{}
	for len(want) < 1000 {
		want[*flagBig/100+rng.IntN(*flagBig*98/100)] = true
	}
	var anchors []anchor
	recs := make([]rec, 0, 10000)
	w0 := procWriteBytes()
	t0 := time.Now()
	for i := range *flagBig {
		r := g.next(0)
		if want[i] {
			anchors = append(anchors, anchor{id: r.id, at: r.at})
		}
		recs = append(recs, r, g.next(uint32(1+i%(*flagTargets-1))))
		if len(recs) >= 10000 {
			if err := e.commit(recs, true); err != nil {
				fatal(err)
			}
			recs = recs[:0]
		}
	}
	if err := e.commit(recs, true); err != nil {
		fatal(err)
	}
	el := time.Since(t0)
	rng.Shuffle(len(anchors), func(i, j int) { anchors[i], anchors[j] = anchors[j], anchors[i] })
	return g, anchors, el, procWriteBytes() - w0
}

// runQueries runs *flagQueries queries of one shape at the anchors and
// returns p50 and p99 in µs and allocations and bytes per query.
func runQueries(e engine, shape string, anchors []anchor) (p50, p99, allocs, bytes float64) {
	var out result
	lat := make([]time.Duration, 0, *flagQueries)
	q := func(i int) error {
		a := anchors[i%len(anchors)]
		switch shape {
		case "LATEST 100":
			return e.latest(0, limit, &out)
		case "BEFORE msgid 100":
			return e.before(0, a.id, limit, &out)
		case "AFTER time 100":
			return e.afterTime(0, a.at, limit, &out)
		default:
			return e.around(0, a.id, limit, &out)
		}
	}
	for i := range 50 { // warm the arenas and the engine's caches
		if err := q(i); err != nil {
			fatal(err)
		}
	}
	var m0, m1 runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&m0)
	for i := range *flagQueries {
		t := time.Now()
		if err := q(i); err != nil {
			fatal(fmt.Errorf("%s %s: %w", e.name(), shape, err))
		}
		lat = append(lat, time.Since(t))
		if out.len() != limit {
			fatal(fmt.Errorf("%s %s: %d events, want %d", e.name(), shape, out.len(), limit))
		}
	}
	runtime.ReadMemStats(&m1)
	n := float64(*flagQueries)
	// lat itself was allocated before m0.
	return us(pct(lat, 50)), us(pct(lat, 99)), float64(m1.Mallocs-m0.Mallocs) / n, float64(m1.TotalAlloc-m0.TotalAlloc) / n
}

// retentionRun measures deleting by time while writes go on, then whether
// the space deleted is used again.
func retentionRun(en string, e engine, g *gen) string {
	// The writer goes on from where the load stopped, in time and sequence.
	g.step = 0
	g.at = time.Now().UnixMilli()
	var stop atomic.Bool
	writer := func(d time.Duration) (int, time.Duration, []time.Duration) {
		var lats []time.Duration
		events := 0
		recs := make([]rec, 0, 1000)
		t0 := time.Now()
		for !stop.Load() && (d == 0 || time.Since(t0) < d) {
			recs = recs[:0]
			for range 1000 {
				recs = append(recs, g.nextAny())
			}
			s := time.Now()
			if err := e.commit(recs, true); err != nil {
				fatal(err)
			}
			lats = append(lats, time.Since(s))
			events += len(recs)
		}
		return events, time.Since(t0), lats
	}
	// sweep deletes everything older than cut, 10,000 events of a target
	// per durable group, as a background sweeper would.
	sweep := func(cut int64) int {
		deleted := 0
		t0 := time.Now()
		for time.Since(t0) < time.Minute {
			n := 0
			for tid := range uint32(*flagTargets) {
				k, err := e.deleteBefore(tid, cut, 10000)
				if err != nil {
					fatal(err)
				}
				n += k
			}
			deleted += n
			if n == 0 {
				break
			}
		}
		return deleted
	}
	stalls := func() (int64, time.Duration) {
		if p, ok := e.(*pebbleEngine); ok {
			return p.stallStats()
		}
		return 0, 0
	}
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).UnixMilli()
	cut1 := base + int64(float64(2**flagBig)**flagRetention/2)*5
	cut2 := base + int64(float64(2**flagBig)**flagRetention)*5

	s0, sd0 := stalls()
	bEv, bEl, bLat := writer(2 * time.Second)

	// The first half of the oldest history goes while the writer runs.
	var wg sync.WaitGroup
	var dEv int
	var dEl time.Duration
	var dLat []time.Duration
	wg.Add(1)
	go func() {
		defer wg.Done()
		dEv, dEl, dLat = writer(0)
	}()
	t0 := time.Now()
	del1 := sweep(cut1)
	delEl := time.Since(t0)
	stop.Store(true)
	wg.Wait()
	s1, sd1 := stalls()

	// The second half goes with nothing else running, then as many events
	// are written again: growth per event tells whether the freed space
	// is used again (bbolt: its freelist; Pebble: once compaction has
	// rewritten the sstables the tombstones cover).
	e.quiesce()
	size1, _ := e.diskBytes()
	del2 := sweep(cut2)
	e.quiesce()
	size2, _ := e.diskBytes()
	free := ""
	if b, ok := e.(*boltEngine); ok {
		free = fmt.Sprintf(" (%s free pages)", mib(b.freeBytes()))
	}
	recs := make([]rec, 0, 1000)
	for w := 0; w < del2; w += len(recs) {
		recs = recs[:0]
		for range min(1000, del2-w) {
			recs = append(recs, g.nextAny())
		}
		if err := e.commit(recs, true); err != nil {
			fatal(err)
		}
	}
	e.quiesce()
	size3, _ := e.diskBytes()
	logf("retention %s: deleted %d in %v with the writer, %d alone, load %s", en, del1, delEl.Round(time.Millisecond), del2, loadavg())
	return fmt.Sprintf("| %s | %s | %s / %s | %s | %s / %s | %s in %.1f s = %s/s | %d (%v) | %s → %s%s → %s: %+.0f B per event written again |", en,
		fmtInt(float64(bEv)/bEl.Seconds()), fmtUs(us(pct(bLat, 99))), fmtUs(us(pct(bLat, 100))),
		fmtInt(float64(dEv)/dEl.Seconds()), fmtUs(us(pct(dLat, 99))), fmtUs(us(pct(dLat, 100))),
		fmtInt(float64(del1)), delEl.Seconds(), fmtInt(float64(del1)/delEl.Seconds()),
		s1-s0, (sd1 - sd0).Round(time.Millisecond),
		mib(size1), mib(size2), free, mib(size3), float64(size3-size1)/float64(max(1, del2)))
}

// ---- formatting ----

func avgVal() int {
	g := newGen(1, 0, 1, 9)
	n := 0
	for range 1000 {
		n += len(g.next(0).val)
	}
	return n / 1000
}

func us(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }

func fmtUs(v float64) string {
	if v >= 1000 {
		return fmt.Sprintf("%.1f ms", v/1000)
	}
	return fmt.Sprintf("%.0f µs", v)
}

func fmtInt(v float64) string {
	s := fmt.Sprintf("%.0f", v)
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}

func mib(n int64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }

func minf(xs []float64) float64 {
	m := xs[0]
	for _, x := range xs {
		m = min(m, x)
	}
	return m
}

func maxf(xs []float64) float64 {
	m := xs[0]
	for _, x := range xs {
		m = max(m, x)
	}
	return m
}

func reversed(s []string) []string {
	r := make([]string, len(s))
	for i, x := range s {
		r[len(s)-1-i] = x
	}
	return r
}

func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	return strings.Join(strings.Fields(string(b))[:3], " ")
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, time.Now().Format("15:04:05 ")+format+"\n", args...)
}

// tempRoot is removed on a fatal error too, so a failed run leaves no
// store behind.
var tempRoot string

func fatal(err error) {
	if errors.Is(err, errNotFound) {
		err = fmt.Errorf("%w (a query's anchor is missing: the engine lost an event)", err)
	}
	fmt.Fprintln(os.Stderr, "historyengines:", err)
	if tempRoot != "" {
		os.RemoveAll(tempRoot)
	}
	os.Exit(1)
}

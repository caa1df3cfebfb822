package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/livechat/livechat/protocol"
)

// ---- histogram ----

func exactQuantile(sorted []int64, q float64) int64 {
	rank := int(math.Ceil(q * float64(len(sorted))))
	if rank < 1 {
		rank = 1
	}
	return sorted[rank-1]
}

func TestHistogramPercentiles(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	dists := map[string]func() int64{
		"uniform-1ms": func() int64 { return rng.Int64N(1_000_000) },
		"lognormal":   func() int64 { return int64(math.Exp(rng.NormFloat64()*1.5 + 12)) },
		"small-exact": func() int64 { return rng.Int64N(200) },
		"bimodal-tail": func() int64 {
			v := rng.Int64N(50_000)
			if rng.IntN(1000) == 0 {
				v += 2e9
			}
			return v
		},
	}
	for name, gen := range dists {
		t.Run(name, func(t *testing.T) {
			var h Histogram
			vals := make([]int64, 200_000)
			for i := range vals {
				vals[i] = gen()
				h.Record(vals[i])
			}
			sort.Slice(vals, func(i, j int) bool { return vals[i] < vals[j] })
			if h.Count() != uint64(len(vals)) {
				t.Fatalf("count %d", h.Count())
			}
			if h.Max() != vals[len(vals)-1] || h.Min() != vals[0] {
				t.Fatalf("min/max %d/%d want %d/%d", h.Min(), h.Max(), vals[0], vals[len(vals)-1])
			}
			for _, q := range []float64{0.5, 0.9, 0.99, 0.999, 1} {
				want := exactQuantile(vals, q)
				got := h.Quantile(q)
				tol := math.Max(float64(want)/histSub/2+1, 1)
				if math.Abs(float64(got-want)) > tol {
					t.Errorf("q%v: got %d want %d (tol %.0f)", q, got, want, tol)
				}
			}
		})
	}
}

func TestHistogramExactSmallAndMerge(t *testing.T) {
	var a, b Histogram
	for v := int64(1); v <= 100; v++ {
		if v%2 == 0 {
			a.Record(v)
		} else {
			b.Record(v)
		}
	}
	a.Merge(&b)
	if a.Count() != 100 || a.Min() != 1 || a.Max() != 100 {
		t.Fatalf("count/min/max %d/%d/%d", a.Count(), a.Min(), a.Max())
	}
	for _, c := range []struct {
		q    float64
		want int64
	}{{0.5, 50}, {0.9, 90}, {0.99, 99}, {0.999, 100}, {0.01, 1}} {
		if got := a.Quantile(c.q); got != c.want {
			t.Errorf("q%v = %d, want %d", c.q, got, c.want)
		}
	}
	if a.Mean() != 50.5 {
		t.Errorf("mean %v", a.Mean())
	}
	var empty Histogram
	if empty.Quantile(0.5) != 0 {
		t.Error("empty quantile")
	}
	// clamping
	var c Histogram
	c.Record(-5)
	c.Record(1 << 50)
	if c.Min() != 0 || c.Max() != histMaxVal {
		t.Errorf("clamp min/max %d %d", c.Min(), c.Max())
	}
}

func TestHistIndexBounds(t *testing.T) {
	prev := -1
	for _, v := range []int64{0, 1, 255, 256, 257, 511, 512, 1000, 1 << 20, 1<<30 + 12345, histMaxVal} {
		i := histIndex(v)
		if i < prev || i >= histBuckets {
			t.Fatalf("index %d for %d (prev %d)", i, v, prev)
		}
		prev = i
		low, w := histBounds(i)
		if v < low || v >= low+w {
			t.Fatalf("value %d not in bucket %d [%d,%d)", v, i, low, low+w)
		}
	}
}

// ---- order / routing / loss checker ----

func privmsg(t *testing.T, room string, body string) *protocol.Message {
	t.Helper()
	m, err := protocol.Parse([]byte(":x!u@h PRIVMSG " + room + " :" + body))
	if err != nil {
		t.Fatal(err)
	}
	return &m
}

func TestReceiverChecks(t *testing.T) {
	var warm atomic.Int64
	warm.Store(1000)
	// room 1 of 2-sender rooms: sender ids 2 and 3; this member is sender 3 (local 1)
	r := newFanReceiver("lcb ", 1, "#r1", 1, 2, &warm)
	body := func(room, sid, seq, ts int) string {
		return fmt.Sprintf("lcb %d %d %d %d", room, sid, seq, ts)
	}
	r.handle(privmsg(t, "#r1", body(1, 2, 1, 500)), 600)   // warmup: not in histogram
	r.handle(privmsg(t, "#R1", body(1, 2, 2, 1500)), 1600) // case-insensitive channel
	r.handle(privmsg(t, "#r1", body(1, 2, 4, 2000)), 2100) // gap (3 lost)
	r.handle(privmsg(t, "#r1", body(1, 2, 4, 2000)), 2100) // duplicate -> order violation
	r.handle(privmsg(t, "#r1", body(1, 2, 3, 2000)), 2100) // reorder -> order violation
	r.handle(privmsg(t, "#r1", body(1, 3, 1, 2000)), 2100) // own message echoed
	r.handle(privmsg(t, "#r1", body(0, 0, 1, 2000)), 2100) // room 0 message in room 1
	r.handle(privmsg(t, "#r0", body(1, 2, 5, 2000)), 2100) // wrong channel
	r.handle(privmsg(t, "#r1", body(1, 0, 5, 2000)), 2100) // sender of another room
	r.handle(privmsg(t, "#r1", "hello there"), 2100)       // foreign
	r.handle(privmsg(t, "#r1", "lcbxy 1 2 7 2000"), 2100)  // another run: foreign
	r.handle(privmsg(t, "#r1", body(1, 2, 6, 3000)+" xxxx"), 3100)
	jm, _ := protocol.Parse([]byte(":x!u@h JOIN #r1"))
	r.handle(&jm, 1)

	if r.orderErrs != 2 {
		t.Errorf("orderErrs %d want 2", r.orderErrs)
	}
	if r.routeErrs != 3 {
		t.Errorf("routeErrs %d want 3", r.routeErrs)
	}
	if r.selfEcho != 1 || r.foreign != 2 {
		t.Errorf("selfEcho %d foreign %d", r.selfEcho, r.foreign)
	}
	if r.total.Load() != 6 || r.count[0] != 6 {
		t.Errorf("total %d count %v", r.total.Load(), r.count)
	}
	if r.hist.Count() != 5 || r.hist.Max() != 100 || r.hist.Min() != 100 {
		t.Errorf("hist count %d min %d max %d", r.hist.Count(), r.hist.Min(), r.hist.Max())
	}
	if r.firstErr == "" {
		t.Error("no firstErr")
	}

	// loss: sender 2 sent 8, sender 3 sent 5. This receiver (sender 3) got
	// 6 of sender 2's (incl. a duplicate) and is not expected to get its own.
	other := newFanReceiver("lcb ", 1, "#r1", 0, 2, &warm) // sender 2 itself
	for seq := 1; seq <= 5; seq++ {
		other.handle(privmsg(t, "#r1", body(1, 3, seq, 2000)), 2001)
	}
	sent := []int64{0, 0, 8, 5}
	lr := lossCheck([]*fanReceiver{r, other}, sent)
	if lr.expected != 13 || lr.received != 11 || lr.lost != 2 || lr.extra != 0 {
		t.Errorf("loss %+v", lr)
	}
	sent[2] = 4
	lr = lossCheck([]*fanReceiver{r, other}, sent)
	if lr.lost != 0 || lr.extra != 2 {
		t.Errorf("extra %+v", lr)
	}
}

func TestWindowAcks(t *testing.T) {
	// -window-at all: 3 receivers, window 4
	s := &fanSender{ack: make(chan struct{}, 1), slots: make([]atomic.Int32, 4), need: 3}
	if s.completed(0) != 0 {
		t.Fatal("nothing sent")
	}
	for _, seq := range []int64{1, 2, 3, 4} {
		s.received(seq)
		s.received(seq)
	}
	if got := s.completed(4); got != 0 {
		t.Fatalf("completed %d before the third receiver", got)
	}
	s.received(2) // seq 2 complete, 1 not: nothing completes in order
	if got := s.completed(4); got != 0 {
		t.Fatalf("completed %d with seq 1 outstanding", got)
	}
	select {
	case <-s.ack:
	default:
		t.Fatal("completing a slot did not wake the sender")
	}
	s.received(1)
	if got := s.completed(4); got != 2 {
		t.Fatalf("completed %d want 2", got)
	}
	// slots of 1 and 2 are free for seqs 5 and 6
	s.received(3)
	s.received(4)
	for i := 0; i < 3; i++ {
		s.received(5)
	}
	if got := s.completed(5); got != 5 {
		t.Fatalf("completed %d want 5", got)
	}
	// observer mode: highest seq seen, gaps allowed
	o := &fanSender{ack: make(chan struct{}, 1)}
	o.received(3)
	o.received(2)
	if o.completed(10) != 3 {
		t.Fatalf("observer completed %d", o.completed(10))
	}
}

func TestParseBody(t *testing.T) {
	for _, c := range []struct {
		in string
		ok bool
	}{
		{"lcb 1 2 3 4", true}, {"lcb 1 2 3 4 pad", true}, {"lcb 1 2 3", false},
		{"lcb 1 2 3 4x", false}, {"xlcb 1 2 3 4", false}, {"lcb 1  2 3 4", false},
		{"lcb 99999999999999999999 2 3 4", false},
	} {
		_, _, _, _, ok := parseBody(c.in, "lcb ")
		if ok != c.ok {
			t.Errorf("%q: ok=%v", c.in, ok)
		}
	}
	room, sid, seq, ts, _ := parseBody("lcb 7 123 45 1700000000000000000 x", "lcb ")
	if room != 7 || sid != 123 || seq != 45 || ts != 1700000000000000000 {
		t.Errorf("values %d %d %d %d", room, sid, seq, ts)
	}
}

func TestAppendMsgPadding(t *testing.T) {
	s := &fanSender{prefix: []byte("PRIVMSG #r0 :lcb 0 1 "), textStart: len("PRIVMSG #r0 :"), pad: 60}
	b := s.appendMsg(nil, 42, 1234)
	line := strings.TrimSuffix(string(b), "\r\n")
	text := line[len("PRIVMSG #r0 :"):]
	if len(text) != 60 || !strings.HasPrefix(text, "lcb 0 1 42 1234 xx") {
		t.Fatalf("padded text %q (%d)", text, len(text))
	}
	if _, _, seq, ts, ok := parseBody(text, "lcb "); !ok || seq != 42 || ts != 1234 {
		t.Fatalf("parse padded: %v %d %d", ok, seq, ts)
	}
	s.pad = 0
	if got := string(s.appendMsg(nil, 1, 2)); got != "PRIVMSG #r0 :lcb 0 1 1 2\r\n" {
		t.Fatalf("unpadded %q", got)
	}
}

// ---- /proc and metrics parsing ----

func TestProcParsing(t *testing.T) {
	stat := []byte("1234 (my (odd) proc) S 1 2 3 4 5 6 7 8 9 10 250 50 0 0 20 0 1 0")
	d, err := parseStatCPU(stat)
	if err != nil || d != 3*time.Second {
		t.Fatalf("stat cpu %v %v", d, err)
	}
	rss, err := parseVmRSS([]byte("Name:\tx\nVmPeak:\t 999 kB\nVmRSS:\t    2048 kB\n"))
	if err != nil || rss != 2048*1024 {
		t.Fatalf("vmrss %d %v", rss, err)
	}
	if _, err := procRSS(os.Getpid()); err != nil {
		t.Fatalf("own rss: %v", err)
	}
	if _, err := procCPU(os.Getpid()); err != nil {
		t.Fatalf("own cpu: %v", err)
	}
	v, err := parseMetricRSS(strings.NewReader("# HELP x\nprocess_resident_memory_bytes_total 1\nprocess_resident_memory_bytes 1.2345e+07\n"))
	if err != nil || v != 12345000 {
		t.Fatalf("metric %d %v", v, err)
	}
	v, err = parseMetricRSS(strings.NewReader(`process_resident_memory_bytes{job="x"} 4096` + "\n"))
	if err != nil || v != 4096 {
		t.Fatalf("labelled metric %d %v", v, err)
	}
	busy, soft, err := parseProcStat([]byte("cpu  100 5 50 1000 20 1 2 3 7 0\ncpu0 1 2 3\n"))
	if err != nil || busy != 1610*time.Millisecond || soft != 20*time.Millisecond {
		t.Fatalf("proc stat busy %v softirq %v %v", busy, soft, err)
	}
	if _, err := parseMetricRSS(strings.NewReader("nothing 1\n")); err == nil {
		t.Fatal("missing metric not reported")
	}
}

// ---- smoke tests against the fake server ----

type result struct {
	Scenario string         `json:"scenario"`
	Params   map[string]any `json:"params"`
	Results  map[string]any `json:"results"`
	raw      string
}

func runBench(t *testing.T, wantCode int, args ...string) result {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(args, &out, &errb)
	if code != wantCode {
		t.Fatalf("exit %d want %d\nstdout:\n%s\nstderr:\n%s", code, wantCode, out.String(), errb.String())
	}
	line := lastJSON(out.String())
	var r result
	if err := json.Unmarshal([]byte(line), &r); err != nil {
		t.Fatalf("bad JSON line %q: %v\nstdout:\n%s", line, err, out.String())
	}
	if n := strings.Count(out.String(), "\n{"); n > 1 {
		t.Fatalf("%d JSON lines", n)
	}
	r.raw = out.String()
	return r
}

func num(t *testing.T, r result, k string) float64 {
	t.Helper()
	v, ok := r.Results[k].(float64)
	if !ok {
		t.Fatalf("result %q missing or not a number: %v\n%s", k, r.Results[k], r.raw)
	}
	return v
}

func checkFanout(t *testing.T, r result, wantMin float64) {
	t.Helper()
	if ok, _ := r.Results["ok"].(bool); !ok {
		t.Fatalf("fanout not ok: %s", r.raw)
	}
	for _, k := range []string{"lost", "order_violations", "routing_errors", "disconnects", "duplicates_or_extra"} {
		if v := num(t, r, k); v != 0 {
			t.Errorf("%s = %v", k, v)
		}
	}
	exp, got := num(t, r, "expected_deliveries"), num(t, r, "delivered")
	if exp < wantMin || exp != got {
		t.Errorf("expected %v delivered %v (want >= %v)", exp, got, wantMin)
	}
	lat := r.Results["latency_us"].(map[string]any)
	if lat["count"].(float64) <= 0 || lat["p99"].(float64) <= 0 || lat["max"].(float64) < lat["p50"].(float64) {
		t.Errorf("latency %v", lat)
	}
}

func TestSmokeFanoutWindow(t *testing.T) {
	f := startFakeIRC(t, true, "lcbf0") // PING cookie before 001; first nick taken
	r := runBench(t, 0, "fanout", "-addr", f.addr(), "-sources", "4", "-rooms", "2", "-members", "4",
		"-senders", "2", "-window", "4", "-warmup", "50ms", "-duration", "250ms", "-timeout", "5s", "-quiet")
	checkFanout(t, r, 2*2*3*4)
	if !strings.Contains(r.raw, "== livechat-bench fanout ==") || !strings.Contains(r.raw, "latency_us (ms)") {
		t.Errorf("no table in output:\n%s", r.raw)
	}
	if r.Scenario != "fanout" || r.Params["window"].(float64) != 4 {
		t.Errorf("params %v", r.Params)
	}
}

func TestSmokeFanoutObserver(t *testing.T) {
	f := startFakeIRC(t, false)
	r := runBench(t, 0, "fanout", "-addr", f.addr(), "-rooms", "1", "-members", "5", "-senders", "5",
		"-window", "2", "-window-at", "observer", "-warmup", "0s", "-duration", "200ms", "-timeout", "5s", "-quiet", "-json-only")
	checkFanout(t, r, 5*4*2)
}

func TestSmokeFanoutRate(t *testing.T) {
	f := startFakeIRC(t, false)
	r := runBench(t, 0, "fanout", "-addr", f.addr(), "-rooms", "3", "-members", "3", "-senders", "3",
		"-rate", "100", "-warmup", "50ms", "-duration", "300ms", "-timeout", "5s", "-json-only", "-quiet",
		"-size", "100", "-pid", strconv.Itoa(os.Getpid()))
	// 9 senders x ~35 msgs x 2 receivers
	checkFanout(t, r, 9*20*2)
	if strings.Contains(r.raw, "==") {
		t.Errorf("-json-only printed a table:\n%s", r.raw)
	}
	if _, ok := r.Results["server_cpu_seconds"]; !ok {
		t.Errorf("no server cpu with -pid: %v", r.Results)
	}
	sent := num(t, r, "sent")
	if sent > 9*36 { // 350 ms at 100/s
		t.Errorf("open loop sent %v messages, more than scheduled", sent)
	}
}

func TestSmokeIdle(t *testing.T) {
	f := startFakeIRC(t, true)
	r := runBench(t, 0, "idle", "-addr", f.addr(), "-conns", "30", "-rooms", "3", "-hold", "50ms", "-settle", "0",
		"-timeout", "5s", "-quiet", "-pid", strconv.Itoa(os.Getpid()))
	if num(t, r, "joined") != 30 || num(t, r, "dropped_during_hold") != 0 {
		t.Fatalf("idle: %s", r.raw)
	}
	num(t, r, "rss_per_conn_kib")

	ms := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, "# TYPE process_resident_memory_bytes gauge\nprocess_resident_memory_bytes 2.097152e+07")
	}))
	defer ms.Close()
	r = runBench(t, 0, "idle", "-addr", f.addr(), "-conns", "10", "-hold", "0s", "-settle", "0",
		"-timeout", "5s", "-quiet", "-json-only", "-metrics", ms.URL)
	if num(t, r, "rss_after_kib") != 20480 || num(t, r, "rss_per_conn_kib") != 0 || num(t, r, "rooms") != 1 {
		t.Fatalf("idle metrics: %s", r.raw)
	}
}

func TestSmokeStorm(t *testing.T) {
	f := startFakeIRC(t, false)
	r := runBench(t, 0, "storm", "-addr", f.addr(), "-conns", "60", "-concurrency", "8", "-timeout", "10s", "-quiet")
	if num(t, r, "completed") != 60 || num(t, r, "failed") != 0 || num(t, r, "completed_per_sec") <= 0 {
		t.Fatalf("storm: %s", r.raw)
	}
	lat := r.Results["connect_to_366_us"].(map[string]any)
	if lat["count"].(float64) != 60 {
		t.Fatalf("storm latency: %v", lat)
	}
}

func TestSmokeErrors(t *testing.T) {
	// Nothing listens: setup fails fast, still one JSON line, exit 1.
	f := startFakeIRC(t, false)
	addr := f.addr()
	f.close()
	r := runBench(t, 1, "storm", "-addr", addr, "-conns", "5", "-concurrency", "2", "-timeout", "5s", "-quiet", "-json-only")
	if num(t, r, "failed") != 5 {
		t.Fatalf("storm failures: %s", r.raw)
	}
	r = runBench(t, 1, "fanout", "-addr", addr, "-members", "3", "-duration", "10ms", "-timeout", "2s", "-quiet", "-json-only")
	if _, ok := r.Results["error"]; !ok {
		t.Fatalf("fanout error: %s", r.raw)
	}
	var out, errb bytes.Buffer
	if code := run([]string{"fanout", "-members", "1"}, &out, &errb); code != 2 {
		t.Fatalf("bad flags exit %d", code)
	}
	if code := run([]string{"fanout", "-h"}, &out, &errb); code != 0 || !strings.Contains(errb.String(), "-window") {
		t.Fatalf("-h exit %d: %s", code, errb.String())
	}
	if code := run([]string{"nope"}, &out, &errb); code != 2 {
		t.Fatalf("unknown scenario exit %d", code)
	}
}

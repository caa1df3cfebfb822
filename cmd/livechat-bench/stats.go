package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"math/bits"
	"os"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

// Histogram is a fixed-size, HDR-style log-linear histogram of non-negative
// int64 values (nanoseconds here). Values below 2*histSub are counted exactly;
// above that every power of two is split into histSub linear sub-buckets, so
// the relative width of a bucket is at most 1/histSub (0.78%) and a reported
// percentile (the bucket midpoint) is within 0.4% of a true sample value.
// Min, max, count and sum are tracked exactly. Memory is fixed (~35 KiB) no
// matter how many values are recorded. Not safe for concurrent use: each
// goroutine records into its own Histogram and they are merged at the end.
type Histogram struct {
	counts [histBuckets]uint64
	n      uint64
	sum    float64
	min    int64
	max    int64
}

const (
	histSubBits = 7
	histSub     = 1 << histSubBits // linear sub-buckets per power of two
	histMaxExp  = 40               // values are clamped below 2^40 ns (~18 min)
	histMaxVal  = int64(1)<<histMaxExp - 1
	// exact part [0, 2*histSub) + (histMaxExp - histSubBits - 1) magnitudes
	histBuckets = 2*histSub + (histMaxExp-histSubBits-1)*histSub
)

func histIndex(v int64) int {
	if v < 2*histSub {
		return int(v)
	}
	e := bits.Len64(uint64(v)) - (histSubBits + 1) // >= 1
	m := int(v >> uint(e))                         // in [histSub, 2*histSub)
	return 2*histSub + (e-1)*histSub + (m - histSub)
}

// histBounds returns the lowest value and the width of bucket i.
func histBounds(i int) (low, width int64) {
	if i < 2*histSub {
		return int64(i), 1
	}
	j := i - 2*histSub
	e := j/histSub + 1
	m := int64(j%histSub + histSub)
	return m << uint(e), int64(1) << uint(e)
}

// Record adds one value. Negative values are recorded as 0, values above
// ~18 minutes are clamped (max still reports the clamp).
func (h *Histogram) Record(v int64) {
	if v < 0 {
		v = 0
	}
	if v > histMaxVal {
		v = histMaxVal
	}
	if h.n == 0 || v < h.min {
		h.min = v
	}
	if v > h.max {
		h.max = v
	}
	h.n++
	h.sum += float64(v)
	h.counts[histIndex(v)]++
}

// Merge adds all values of o into h.
func (h *Histogram) Merge(o *Histogram) {
	if o == nil || o.n == 0 {
		return
	}
	if h.n == 0 || o.min < h.min {
		h.min = o.min
	}
	if o.max > h.max {
		h.max = o.max
	}
	h.n += o.n
	h.sum += o.sum
	for i, c := range o.counts {
		if c != 0 {
			h.counts[i] += c
		}
	}
}

func (h *Histogram) Count() uint64 { return h.n }
func (h *Histogram) Max() int64    { return h.max }
func (h *Histogram) Min() int64    { return h.min }

func (h *Histogram) Mean() float64 {
	if h.n == 0 {
		return 0
	}
	return h.sum / float64(h.n)
}

// Quantile returns the value at quantile q in [0,1] (nearest rank: the
// smallest recorded value v such that at least q of all values are <= v),
// as the midpoint of its bucket clamped to [min, max].
func (h *Histogram) Quantile(q float64) int64 {
	if h.n == 0 {
		return 0
	}
	if q <= 0 {
		return h.min
	}
	if q >= 1 {
		return h.max
	}
	rank := uint64(math.Ceil(q * float64(h.n)))
	if rank < 1 {
		rank = 1
	}
	var cum uint64
	for i, c := range h.counts {
		if c == 0 {
			continue
		}
		cum += c
		if cum >= rank {
			low, w := histBounds(i)
			v := low + (w-1)/2
			if v < h.min {
				v = h.min
			}
			if v > h.max {
				v = h.max
			}
			return v
		}
	}
	return h.max
}

// latencySummary is the JSON/table form of a latency histogram, in
// microseconds.
func latencySummary(h *Histogram) ordered {
	us := func(ns int64) float64 { return math.Round(float64(ns)/10) / 100 } // 0.01 us resolution
	return ordered{
		{"count", h.Count()},
		{"min", us(h.Min())},
		{"mean", math.Round(h.Mean()/10) / 100},
		{"p50", us(h.Quantile(0.50))},
		{"p90", us(h.Quantile(0.90))},
		{"p99", us(h.Quantile(0.99))},
		{"p999", us(h.Quantile(0.999))},
		{"max", us(h.Max())},
	}
}

// ---- ordered key/value results: one source for both the table and JSON ----

type kv struct {
	K string
	V any
}

// ordered is a JSON object whose keys keep their insertion order.
type ordered []kv

func (o ordered) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('{')
	for i, e := range o {
		if i > 0 {
			b.WriteByte(',')
		}
		k, _ := json.Marshal(e.K)
		b.Write(k)
		b.WriteByte(':')
		v, err := json.Marshal(normalizeJSON(e.V))
		if err != nil {
			return nil, err
		}
		b.Write(v)
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

func normalizeJSON(v any) any {
	switch x := v.(type) {
	case time.Duration:
		return x.String()
	case float64:
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return nil
		}
	}
	return v
}

// report is one scenario run: exactly one JSON line on stdout (and, unless
// -json-only, a human table before it).
type report struct {
	Scenario string  `json:"scenario"`
	Params   ordered `json:"params"`
	Results  ordered `json:"results"`
}

func (r *report) add(k string, v any) { r.Results = append(r.Results, kv{k, v}) }

func (r *report) print(w io.Writer, jsonOnly bool) error {
	if !jsonOnly {
		fmt.Fprintf(w, "\n== livechat-bench %s ==\n", r.Scenario)
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		writeTable(tw, "", r.Results)
		tw.Flush()
		fmt.Fprintln(w)
	}
	line, err := json.Marshal(r)
	if err != nil {
		return err
	}
	line = append(line, '\n')
	_, err = w.Write(line)
	return err
}

func writeTable(tw io.Writer, prefix string, o ordered) {
	for _, e := range o {
		name := e.K
		if prefix != "" {
			name = prefix + "." + e.K
		}
		if sub, ok := e.V.(ordered); ok {
			if isLatency(sub) {
				fmt.Fprintf(tw, "%s (ms)\tp50 %s\tp90 %s\tp99 %s\tp99.9 %s\tmax %s\tn=%v\n", name,
					msStr(sub, "p50"), msStr(sub, "p90"), msStr(sub, "p99"), msStr(sub, "p999"), msStr(sub, "max"), get(sub, "count"))
				continue
			}
			writeTable(tw, name, sub)
			continue
		}
		if m, ok := e.V.(map[string]int64); ok {
			keys := make([]string, 0, len(m))
			for k := range m {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			parts := make([]string, 0, len(keys))
			for _, k := range keys {
				parts = append(parts, k+"="+strconv.FormatInt(m[k], 10))
			}
			if len(parts) == 0 {
				parts = append(parts, "-")
			}
			fmt.Fprintf(tw, "%s\t%s\n", name, strings.Join(parts, " "))
			continue
		}
		fmt.Fprintf(tw, "%s\t%s\n", name, fmtVal(e.V))
	}
}

func isLatency(o ordered) bool {
	return len(o) > 0 && o[0].K == "count" && get(o, "p999") != nil
}

func get(o ordered, k string) any {
	for _, e := range o {
		if e.K == k {
			return e.V
		}
	}
	return nil
}

func msStr(o ordered, k string) string {
	if f, ok := get(o, k).(float64); ok {
		return strconv.FormatFloat(f/1000, 'f', 3, 64)
	}
	return "-"
}

func fmtVal(v any) string {
	switch x := v.(type) {
	case float64:
		if x == math.Trunc(x) && math.Abs(x) < 1e15 {
			return strconv.FormatFloat(x, 'f', 0, 64)
		}
		return strconv.FormatFloat(x, 'f', 3, 64)
	case nil:
		return "-"
	default:
		return fmt.Sprint(v)
	}
}

// round3 rounds to 3 decimals for readable JSON.
func round3(f float64) float64 {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return f
	}
	return math.Round(f*1000) / 1000
}

func stderrf(format string, a ...any) { fmt.Fprintf(os.Stderr, format, a...) }

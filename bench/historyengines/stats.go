package main

import (
	"os"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// allocated is what a file takes on disk: its blocks, not its length.
func allocated(fi os.FileInfo) int64 {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return st.Blocks * 512
	}
	return fi.Size()
}

// pct is the p-th percentile (0-100) of ds, which it sorts.
func pct(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	slices.Sort(ds)
	i := int(float64(len(ds)-1) * p / 100)
	return ds[i]
}

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// procWriteBytes is what this process has made the kernel write to disk
// (/proc/self/io write_bytes): every engine's writes, rewrites of the
// same page and write-ahead log included, so it measures write
// amplification the same way for both.
func procWriteBytes() int64 {
	b, err := os.ReadFile("/proc/self/io")
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "write_bytes: "); ok {
			n, _ := strconv.ParseInt(v, 10, 64)
			return n
		}
	}
	return 0
}

// cpuSample is the machine's busy CPU time and this process's, to tell
// how much of the machine others used while we measured.
type cpuSample struct {
	at           time.Time
	busy, ours   float64 // seconds
	clkTck       float64
	sampledProcs bool
}

func sampleCPU() cpuSample {
	s := cpuSample{at: time.Now(), clkTck: 100}
	if b, err := os.ReadFile("/proc/stat"); err == nil {
		f := strings.Fields(strings.SplitN(string(b), "\n", 2)[0])
		// cpu user nice system idle iowait irq softirq steal
		for i, v := range f[1:] {
			n, _ := strconv.ParseFloat(v, 64)
			if i != 3 && i != 4 && i < 8 {
				s.busy += n / s.clkTck
			}
		}
		s.sampledProcs = true
	}
	if b, err := os.ReadFile("/proc/self/stat"); err == nil {
		str := string(b)
		f := strings.Fields(str[strings.LastIndexByte(str, ')')+2:])
		ut, _ := strconv.ParseFloat(f[11], 64)
		st, _ := strconv.ParseFloat(f[12], 64)
		s.ours = (ut + st) / s.clkTck
	}
	return s
}

// othersCores is how many cores, on average, processes other than this
// one kept busy between a and b.
func othersCores(a, b cpuSample) float64 {
	el := b.at.Sub(a.at).Seconds()
	if el <= 0 || !a.sampledProcs {
		return 0
	}
	return ((b.busy - a.busy) - (b.ours - a.ours)) / el
}

func oursCores(a, b cpuSample) float64 {
	el := b.at.Sub(a.at).Seconds()
	if el <= 0 {
		return 0
	}
	return (b.ours - a.ours) / el
}

// pressure is the kernel's "some" stall total for a resource (cpu, io):
// microseconds during which at least one task waited for it.
func pressure(res string) float64 {
	b, err := os.ReadFile("/proc/pressure/" + res)
	if err != nil {
		return -1
	}
	for _, f := range strings.Fields(strings.SplitN(string(b), "\n", 2)[0]) {
		if v, ok := strings.CutPrefix(f, "total="); ok {
			n, _ := strconv.ParseFloat(v, 64)
			return n
		}
	}
	return -1
}

package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"
)

// clkTck is USER_HZ, the unit of utime/stime in /proc/<pid>/stat. It is 100
// on every Linux architecture Go supports (the kernel ABI fixes it).
const clkTck = 100

// procRSS returns the resident set size of pid from /proc/<pid>/status
// (VmRSS), in bytes.
func procRSS(pid int) (int64, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0, err
	}
	return parseVmRSS(b)
}

func parseVmRSS(b []byte) (int64, error) {
	for _, line := range bytes.Split(b, []byte{'\n'}) {
		if rest, ok := bytes.CutPrefix(line, []byte("VmRSS:")); ok {
			f := strings.Fields(string(rest))
			if len(f) < 1 {
				break
			}
			kb, err := strconv.ParseInt(f[0], 10, 64)
			if err != nil {
				return 0, err
			}
			return kb * 1024, nil
		}
	}
	return 0, errors.New("no VmRSS line")
}

// procCPU returns utime+stime of pid from /proc/<pid>/stat.
func procCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, err
	}
	return parseStatCPU(b)
}

func parseStatCPU(b []byte) (time.Duration, error) {
	// The command name (field 2) is in parentheses and may contain spaces;
	// fields after the last ')' start with field 3 (state).
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, errors.New("malformed stat")
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0, errors.New("short stat")
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64) // field 14
	st, err2 := strconv.ParseInt(f[12], 10, 64) // field 15
	if err1 != nil || err2 != nil {
		return 0, errors.New("bad utime/stime")
	}
	return time.Duration(ut+st) * time.Second / clkTck, nil
}

// scrapeRSS fetches a Prometheus text exposition and returns
// process_resident_memory_bytes.
func scrapeRSS(ctx context.Context, url string) (int64, error) {
	body, err := fetch(ctx, url)
	if err != nil {
		return 0, err
	}
	return parseMetricRSS(strings.NewReader(body))
}

// fetch GETs url and returns the body (at most 64 MiB).
func fetch(ctx context.Context, url string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return "", err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("%s: %s", url, resp.Status)
	}
	return string(b), nil
}

func parseMetricRSS(r io.Reader) (int64, error) {
	v, err := parseMetric(r, "process_resident_memory_bytes")
	return int64(v), err
}

// parseMetric returns the first sample of the series name (any labels)
// in a Prometheus text exposition.
func parseMetric(r io.Reader, name string) (float64, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, name) {
			continue
		}
		rest := strings.TrimPrefix(line, name)
		if rest == "" || (rest[0] != ' ' && rest[0] != '{' && rest[0] != '\t') {
			continue // a longer metric name
		}
		if j := strings.IndexByte(rest, '}'); j >= 0 {
			rest = rest[j+1:]
		}
		f := strings.Fields(rest)
		if len(f) < 1 {
			continue
		}
		v, err := strconv.ParseFloat(f[0], 64)
		if err != nil {
			return 0, fmt.Errorf("%s: %v", name, err)
		}
		return v, nil
	}
	if err := sc.Err(); err != nil {
		return 0, err
	}
	return 0, fmt.Errorf("no %s in metrics", name)
}

// rssSource measures the server's RSS from /proc (pid) or /metrics (url).
type rssSource struct {
	pid int
	url string
}

func (s rssSource) enabled() bool { return s.pid > 0 || s.url != "" }

func (s rssSource) describe() string {
	if s.pid > 0 {
		return "/proc/" + strconv.Itoa(s.pid) + "/status VmRSS"
	}
	if s.url != "" {
		return s.url + " process_resident_memory_bytes"
	}
	return "none"
}

func (s rssSource) measure(ctx context.Context) (int64, error) {
	if s.pid > 0 {
		return procRSS(s.pid)
	}
	if s.url != "" {
		return scrapeRSS(ctx, s.url)
	}
	return 0, errors.New("no -pid or -metrics given")
}

// machineBusy returns the CPU time all CPUs of the machine spent busy (the
// "cpu" line of /proc/stat: everything but idle and iowait) and, separately,
// the part of it spent in softirq context, which on loopback is mostly the
// network stack moving the benchmark's packets and is charged to no process.
func machineBusy() (busy, softirq time.Duration, err error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0, err
	}
	return parseProcStat(b)
}

func parseProcStat(b []byte) (busy, softirq time.Duration, err error) {
	line, _, _ := bytes.Cut(b, []byte{'\n'})
	f := strings.Fields(string(line))
	if len(f) < 8 || f[0] != "cpu" {
		return 0, 0, errors.New("malformed /proc/stat")
	}
	var sum, soft int64
	for i, x := range f[1:] {
		if i >= 8 { // guest time is already counted in user
			break
		}
		v, err := strconv.ParseInt(x, 10, 64)
		if err != nil {
			return 0, 0, err
		}
		switch i {
		case 3, 4: // idle, iowait
			continue
		case 6:
			soft = v
		}
		sum += v
	}
	tick := func(t int64) time.Duration { return time.Duration(t) * time.Second / clkTck }
	return tick(sum), tick(soft), nil
}

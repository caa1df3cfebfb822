// Command livechat-bench is a load generator for IRC servers (livechatd,
// InspIRCd, ngIRCd, ...). It speaks plain IRC (NICK/USER/JOIN/PRIVMSG) and
// has four scenarios:
//
//	livechat-bench fanout [flags]  R rooms x M members, S senders per room; throughput,
//	                               latency percentiles, order/routing/loss checks
//	livechat-bench idle [flags]    N registered+joined idle connections; server RSS per connection
//	livechat-bench storm [flags]   connect/register/join/quit churn; completions per second
//	livechat-bench soak [flags]    many clients churning for a long time; delivery and
//	                               order checks, server goroutines/heap back to baseline
//
// Each run prints a table and exactly one JSON line
// {"scenario":...,"params":{...},"results":{...}} on stdout (-json-only: only
// the JSON line). Progress goes to stderr. See `livechat-bench <scenario> -h`.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime/debug"
	"runtime/pprof"
	"strings"
	"sync"
	"syscall"
	"time"
)

func main() {
	// The tool allocates little that lives long (fixed-size histograms, one
	// read buffer per connection) but parses a line per delivery; a higher
	// GC target trades a few MiB for noticeably less GC CPU on the machine
	// it shares with the server under test. GOGC in the environment wins.
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(400)
	}
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

const topUsage = `livechat-bench: load generator for IRC servers (plain IRC over TCP).

Usage:
  livechat-bench fanout [flags]   rooms x members message fan-out: throughput, latency, order/loss checks
  livechat-bench idle   [flags]   many idle joined connections: server RSS per connection
  livechat-bench storm  [flags]   connect -> register -> join -> quit churn: completions/s, latency
  livechat-bench soak   [flags]   clients churn for a long time: every message delivered in order, server back to baseline

Run "livechat-bench <scenario> -h" for the scenario's flags.
Output: a human-readable table and exactly one JSON line
  {"scenario":"...","params":{...},"results":{...}}
on stdout (only the JSON line with -json-only); progress lines go to stderr.
`

// run is main without os.Exit, so tests can call it.
func run(args []string, stdout, stderr io.Writer) int {
	if len(args) < 1 {
		fmt.Fprint(stderr, topUsage)
		return 2
	}
	var sc scenario
	switch args[0] {
	case "fanout":
		sc = &fanoutScenario{}
	case "idle":
		sc = &idleScenario{}
	case "storm":
		sc = &stormScenario{}
	case "soak":
		sc = &soakScenario{}
	case "-h", "-help", "--help", "help":
		fmt.Fprint(stdout, topUsage)
		return 0
	default:
		fmt.Fprintf(stderr, "livechat-bench: unknown scenario %q\n\n%s", args[0], topUsage)
		return 2
	}
	fs := flag.NewFlagSet(args[0], flag.ContinueOnError)
	fs.SetOutput(stderr)
	c := &common{}
	c.register(fs, sc.defaultNickPrefix())
	sc.flags(fs)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: livechat-bench %s [flags]\n\n%s\nFlags:\n", args[0], sc.doc())
		fs.PrintDefaults()
	}
	if err := fs.Parse(args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "livechat-bench %s: unexpected arguments %q\n", args[0], fs.Args())
		return 2
	}
	c.stderr = stderr
	if err := sc.validate(c); err != nil {
		fmt.Fprintf(stderr, "livechat-bench %s: %v\n", args[0], err)
		return 2
	}
	raiseNoFile(c, sc.fdsNeeded())

	rep := &report{Scenario: args[0]}
	fs.VisitAll(func(f *flag.Flag) {
		var v any = f.Value.String()
		if g, ok := f.Value.(flag.Getter); ok {
			v = g.Get()
		}
		rep.Params = append(rep.Params, kv{f.Name, v})
	})

	d, err := newDialer(c.addr, c.sources, c.websocket)
	if err != nil {
		fmt.Fprintf(stderr, "livechat-bench %s: %v\n", args[0], err)
		return 2
	}
	c.dialer = d

	if c.cpuProfile != "" {
		f, err := os.Create(c.cpuProfile)
		if err != nil {
			fmt.Fprintf(stderr, "livechat-bench: %v\n", err)
			return 2
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			fmt.Fprintf(stderr, "livechat-bench: %v\n", err)
			return 2
		}
		defer pprof.StopCPUProfile()
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	runErr := sc.run(ctx, c, rep)
	if runErr != nil {
		rep.add("error", runErr.Error())
		fmt.Fprintf(stderr, "livechat-bench %s: %v\n", args[0], runErr)
	}
	if err := rep.print(stdout, c.jsonOnly); err != nil {
		fmt.Fprintf(stderr, "livechat-bench: writing output: %v\n", err)
		return 1
	}
	if runErr != nil {
		return 1
	}
	return 0
}

type scenario interface {
	doc() string
	defaultNickPrefix() string
	flags(fs *flag.FlagSet)
	validate(c *common) error
	fdsNeeded() int
	run(ctx context.Context, c *common, rep *report) error
}

// common holds the flags every scenario shares.
type common struct {
	addr       string
	websocket  bool
	sources    int
	timeout    time.Duration
	jsonOnly   bool
	quiet      bool
	nickPrefix string
	roomPrefix string
	pid        int
	dialConc   int
	cpuProfile string

	stderr io.Writer
	dialer *dialer
}

func (c *common) register(fs *flag.FlagSet, nickPrefix string) {
	fs.StringVar(&c.addr, "addr", "127.0.0.1:6667", "IRC server `host:port` (plain TCP); several, comma-separated, spread the connections round robin (nodes of a cluster)")
	fs.BoolVar(&c.websocket, "websocket", false, "connect over WebSocket (ws://addr/, IRCv3 text.ircv3.net) instead of plain TCP")
	fs.IntVar(&c.sources, "sources", 16, "dial from this many loopback source addresses 127.0.0.2..127.0.0.(K+1) (0: let the kernel choose); only used when -addr is an IPv4 loopback address")
	fs.DurationVar(&c.timeout, "timeout", 60*time.Second, "bound on every waiting phase (connection setup, drain, per-connection steps); the whole run also has a hard deadline derived from it")
	fs.BoolVar(&c.jsonOnly, "json-only", false, "print only the JSON result line on stdout")
	fs.BoolVar(&c.quiet, "quiet", false, "no progress lines on stderr")
	fs.StringVar(&c.nickPrefix, "nick-prefix", nickPrefix, "nick prefix; nick = prefix + base-36 connection index (short, fits a 9-char NICKLEN)")
	fs.StringVar(&c.roomPrefix, "room-prefix", "#lcb", "channel name prefix; room = prefix + room index")
	fs.IntVar(&c.pid, "pid", 0, "server process id on this machine: report its CPU time (and RSS for idle) from /proc/<pid>")
	fs.IntVar(&c.dialConc, "dial-concurrency", 64, "connections being set up at once during the setup phase (fanout, idle)")
	fs.StringVar(&c.cpuProfile, "cpuprofile", "", "write a CPU profile of this tool to `file` (go tool pprof)")
}

// raiseNoFile raises RLIMIT_NOFILE's soft limit to the hard limit (and, when
// that is still too low and we are privileged, the hard limit too), and warns
// when the result is lower than what the scenario needs.
func raiseNoFile(c *common, need int) {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		fmt.Fprintf(c.stderr, "livechat-bench: getrlimit: %v\n", err)
		return
	}
	want := uint64(need) + 64
	if rl.Max < want {
		try := syscall.Rlimit{Cur: want, Max: want}
		if syscall.Setrlimit(syscall.RLIMIT_NOFILE, &try) == nil {
			rl = try
		}
	}
	if rl.Cur < rl.Max {
		rl.Cur = rl.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
			fmt.Fprintf(c.stderr, "livechat-bench: setrlimit: %v\n", err)
		}
	}
	_ = syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl)
	if rl.Cur < want {
		fmt.Fprintf(c.stderr, "livechat-bench: WARNING: RLIMIT_NOFILE is %d (hard %d) but this run needs about %d descriptors; raise it (ulimit -Hn) or connections will fail\n", rl.Cur, rl.Max, want)
	}
}

// ---- progress lines ----

// progress prints fn() to stderr once a second, starting after the run has
// lasted 2 seconds (short runs stay silent). On a terminal the line is
// rewritten in place with \r; otherwise plain lines are written.
type progress struct {
	stop chan struct{}
	done chan struct{}
}

func startProgress(c *common, name string, fn func() string) *progress {
	p := &progress{stop: make(chan struct{}), done: make(chan struct{})}
	if c.quiet {
		close(p.done)
		return p
	}
	tty := isTerminal(c.stderr)
	start := time.Now()
	go func() {
		defer close(p.done)
		t := time.NewTicker(time.Second)
		defer t.Stop()
		printed := false
		for {
			select {
			case <-p.stop:
				if printed && tty {
					fmt.Fprint(c.stderr, "\n")
				}
				return
			case now := <-t.C:
				el := now.Sub(start)
				if el < 2*time.Second {
					continue
				}
				line := fmt.Sprintf("%s %5.0fs %s", name, el.Seconds(), fn())
				if tty {
					fmt.Fprintf(c.stderr, "\r\x1b[K%s", line)
				} else {
					fmt.Fprintln(c.stderr, line)
				}
				printed = true
			}
		}
	}()
	return p
}

func (p *progress) Stop() {
	select {
	case <-p.stop:
	default:
		close(p.stop)
	}
	<-p.done
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	if err != nil {
		return false
	}
	return st.Mode()&os.ModeCharDevice != 0
}

// ---- CPU accounting ----

// cpuTime is this process's user+system CPU time.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// cpuMeter measures the CPU used by this process and, if pid > 0, by the
// server process between start and stop.
type cpuMeter struct {
	pid              int
	wall0            time.Time
	self0, srv0      time.Duration
	srvOK            bool
	wall, self, serv time.Duration
	mach0, mach      time.Duration // whole machine busy CPU (/proc/stat)
	soft0, soft      time.Duration // of which softirq
	machOK           bool
}

func startCPU(pid int) *cpuMeter {
	m := &cpuMeter{pid: pid, wall0: time.Now(), self0: cpuTime()}
	if t, st, err := machineBusy(); err == nil {
		m.mach0, m.soft0, m.machOK = t, st, true
	}
	if pid > 0 {
		if t, err := procCPU(pid); err == nil {
			m.srv0, m.srvOK = t, true
		}
	}
	return m
}

func (m *cpuMeter) stop() {
	m.wall = time.Since(m.wall0)
	m.self = cpuTime() - m.self0
	if m.machOK {
		if t, st, err := machineBusy(); err == nil {
			m.mach = t - m.mach0
			m.soft = st - m.soft0
		} else {
			m.machOK = false
		}
	}
	if m.srvOK {
		if t, err := procCPU(m.pid); err == nil {
			m.serv = t - m.srv0
		} else {
			m.srvOK = false
		}
	}
}

// add appends tool (and server) CPU figures; per is the number of units
// (delivered messages, connections) to divide by, perName names the unit.
func (m *cpuMeter) add(rep *report, per int64, perName string) {
	rep.add("tool_cpu_seconds", round3(m.self.Seconds()))
	rep.add("tool_cpu_util_cores", round3(m.self.Seconds()/m.wall.Seconds()))
	if per > 0 {
		rep.add("tool_cpu_us_per_"+perName, round3(float64(m.self.Microseconds())/float64(per)))
	}
	if m.srvOK {
		rep.add("server_cpu_seconds", round3(m.serv.Seconds()))
		rep.add("server_cpu_util_cores", round3(m.serv.Seconds()/m.wall.Seconds()))
		if per > 0 {
			rep.add("server_cpu_us_per_"+perName, round3(float64(m.serv.Microseconds())/float64(per)))
		}
	}
	if m.machOK {
		// Everything else running on the machine meanwhile: a large value
		// means the numbers were disturbed by other work. Softirq time
		// (loopback packet processing, charged to no process) is reported
		// on its own.
		other := m.mach - m.soft - m.self
		if m.srvOK {
			other -= m.serv
		}
		rep.add("machine_cpu_util_cores", round3(m.mach.Seconds()/m.wall.Seconds()))
		rep.add("softirq_cpu_util_cores", round3(m.soft.Seconds()/m.wall.Seconds()))
		rep.add("other_cpu_util_cores", round3(max(0, other.Seconds())/m.wall.Seconds()))
	}
}

// parallel runs fn(i) for i in [0,n) on at most conc goroutines. It stops
// handing out work once ctx is done.
func parallel(ctx context.Context, n, conc int, fn func(i int)) {
	if conc < 1 {
		conc = 1
	}
	if conc > n {
		conc = n
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	next := 0
	for w := 0; w < conc; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				if ctx.Err() != nil {
					return
				}
				mu.Lock()
				i := next
				next++
				mu.Unlock()
				if i >= n {
					return
				}
				fn(i)
			}
		}()
	}
	wg.Wait()
}

// errorCounts counts errors by a short class name, safe for concurrent use.
type errorCounts struct {
	mu sync.Mutex
	m  map[string]int64
	// first few distinct messages, for the report
	samples []string
}

func (e *errorCounts) add(class string, err error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.m == nil {
		e.m = map[string]int64{}
	}
	e.m[class]++
	if err != nil && len(e.samples) < 5 {
		s := err.Error()
		for _, x := range e.samples {
			if x == s {
				return
			}
		}
		e.samples = append(e.samples, s)
	}
}

func (e *errorCounts) total() int64 {
	e.mu.Lock()
	defer e.mu.Unlock()
	var t int64
	for _, v := range e.m {
		t += v
	}
	return t
}

func (e *errorCounts) snapshot() map[string]int64 {
	e.mu.Lock()
	defer e.mu.Unlock()
	m := make(map[string]int64, len(e.m))
	for k, v := range e.m {
		m[k] = v
	}
	return m
}

func (e *errorCounts) sampleString() string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return strings.Join(e.samples, "; ")
}

package daemon

import (
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/livechat/livechat/daemon/wslisten"
)

// metrics are the server's Prometheus collectors. No label takes a room,
// nick or address, so cardinality stays bounded. Counters on the chat path
// are resolved once (no label lookup per line) and are lock-free.
type metrics struct {
	connections     *prometheus.GaugeVec
	connectsTotal   *prometheus.CounterVec
	disconnects     *prometheus.CounterVec
	refused         *prometheus.CounterVec
	commands        []prometheus.Counter  // by command.idx
	commandSeconds  []prometheus.Observer // by command.idx
	commandTicks    []atomic.Uint32       // by command.idx: picks the commands timed
	unknownCommand  prometheus.Counter
	roomMessages    prometheus.Counter
	deliveries      prometheus.Counter
	fanout          prometheus.Histogram
	slowConsumers   prometheus.Counter
	devicesAttached prometheus.Counter
	rooms           prometheus.Gauge
	roomRestarts    prometheus.Counter
	flood           *prometheus.CounterVec
	tooLong         prometheus.Counter
	invalidInput    prometheus.Counter
	refusedInput    *prometheus.CounterVec // malformed lines, by reason (refusal* constants)
	bytesRead       prometheus.Counter
	bytesWritten    prometheus.Counter
	limitsHit       *prometheus.CounterVec
	logins          *prometheus.CounterVec
	registrations   *prometheus.CounterVec
	ipLimitAddrs    prometheus.GaugeFunc // per-IP limiter's table size, to watch its memory bound
	history         *historyMetrics
}

func newMetrics(reg *prometheus.Registry, srv *Server) *metrics {
	m := &metrics{
		connections: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "livechat_connections", Help: "Open client connections.",
		}, []string{"transport"}),
		connectsTotal: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "livechat_connections_total", Help: "Client connections accepted.",
		}, []string{"transport"}),
		disconnects: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "livechat_disconnects_total", Help: "Client disconnections by reason.",
		}, []string{"reason"}),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "livechat_connections_refused_total", Help: "Connections refused at accept (or at the WebSocket upgrade), by reason; dline and kline also count connections a server ban closed at registration, at login or when it was set.",
		}, []string{"reason"}),
		roomMessages: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "livechat_room_messages_total", Help: "Messages accepted by rooms.",
		}),
		deliveries: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "livechat_deliveries_total", Help: "Room messages queued to members.",
		}),
		fanout: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "livechat_fanout_seconds", Help: "Time from a message reaching its room to the last member enqueued.",
			Buckets: prometheus.ExponentialBuckets(1e-6, 4, 10),
		}),
		devicesAttached: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "livechat_multiclient_attaches_total", Help: "Connections that logged in to an account already connected and joined it as another device (multiclient).",
		}),
		slowConsumers: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "livechat_slow_consumer_disconnects_total", Help: "Clients dropped because their send queue overflowed, or a long reply to them stalled for ping_timeout.",
		}),
		rooms: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "livechat_rooms", Help: "Rooms with an actor (live rooms; see livechat_rooms_dormant for the others).",
		}),
		roomRestarts: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "livechat_room_restarts_total", Help: "Panics recovered inside room actors.",
		}),
		flood: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "livechat_flood_events_total", Help: "Flood control actions: delay (fake lag) or disconnect.",
		}, []string{"action"}),
		tooLong: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "livechat_input_too_long_total", Help: "Lines dropped for exceeding the length limit.",
		}),
		invalidInput: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "livechat_invalid_utf8_total", Help: "Lines rejected for invalid UTF-8.",
		}),
		refusedInput: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "livechat_input_refused_total", Help: "Malformed lines refused without running them, by reason.",
		}, []string{"reason"}),
		bytesRead: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "livechat_bytes_read_total", Help: "Bytes read from clients.",
		}),
		bytesWritten: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "livechat_bytes_written_total", Help: "Bytes written to clients.",
		}),
	}
	m.limitsHit = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "livechat_limits_hit_total", Help: "Requests refused by a limit: joins by joined_rooms (per connection), room_members, rooms (server); MONITOR additions by monitor; logins beyond devices (devices_per_account, which keep a nick of their own).",
	}, []string{"limit"})
	for _, l := range []string{"joined_rooms", "room_members", "rooms"} {
		m.limitsHit.WithLabelValues(l)
	}
	for _, r := range []string{refusalParse, refusalTagKey, refusalLineBreak} {
		m.refusedInput.WithLabelValues(r)
	}
	reg.MustRegister(m.limitsHit)
	m.logins = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "livechat_logins_total", Help: "Login attempts (LOGIN, SASL) by result.",
	}, []string{"result"})
	m.registrations = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "livechat_registrations_total", Help: "Account registrations by result.",
	}, []string{"result"})
	// Quota refusals exported at 0 from the start, for rate alerts.
	m.registrations.WithLabelValues("quota_address")
	m.registrations.WithLabelValues("quota_connection")
	reg.MustRegister(m.logins, m.registrations,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "livechat_accounts", Help: "Registered accounts."},
			func() float64 { return float64(srv.accounts.Count()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "livechat_hash_pool_in_use", Help: "Password hashes running now."},
			func() float64 { in, _ := srv.accounts.PoolStats(); return float64(in) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "livechat_hash_pool_waiting", Help: "Logins and registrations waiting for a hashing worker."},
			func() float64 { _, w := srv.accounts.PoolStats(); return float64(w) }))
	commands := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "livechat_commands_total", Help: "Commands received, by command.",
	}, []string{"command"})
	// Per command, so a slow LOGIN (hashing) or CHATHISTORY (the disk)
	// shows apart from chat; few buckets keep the series count down.
	commandSeconds := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "livechat_command_seconds", Help: "Time to run one command's handler, by command (REGISTER and LOGIN include the password hash); one command in 8 of each kind is timed.",
		Buckets: []float64{1e-5, 1e-4, 1e-3, 0.01, 0.1, 1, 10},
	}, []string{"command"})
	m.commandTicks = make([]atomic.Uint32, len(commandList))
	for _, c := range commandList {
		m.commands = append(m.commands, commands.WithLabelValues(c.name))
		m.commandSeconds = append(m.commandSeconds, commandSeconds.WithLabelValues(c.name))
	}
	m.unknownCommand = commands.WithLabelValues("unknown")
	reg.MustRegister(
		m.connections, m.connectsTotal, m.disconnects, m.refused, commands, commandSeconds,
		m.roomMessages, m.deliveries, m.fanout, m.slowConsumers, m.devicesAttached, m.rooms, m.roomRestarts,
		m.flood, m.tooLong, m.invalidInput, m.refusedInput, m.bytesRead, m.bytesWritten,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "livechat_nicks", Help: "Nicks in use."},
			func() float64 { return float64(srv.nicks.len()) }),
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	m.ipLimitAddrs = prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "livechat_ip_limit_addresses", Help: "Client addresses (IPv4, or IPv6 /64) the per-IP connection limiter remembers.",
	}, func() float64 { return float64(srv.iplimit.tracked()) })
	reg.MustRegister(m.ipLimitAddrs)
	m.history = newHistoryMetrics(reg, srv)
	// Export the per-IP refusal reasons at 0 from the start, so alerts on
	// their rate see a series before the first refusal.
	m.refused.WithLabelValues(refusedPerIP)
	m.refused.WithLabelValues(refusedPerIPRate)
	m.refused.WithLabelValues(wslisten.RefusedOrigin)
	m.refused.WithLabelValues(wslisten.RefusedHandshake)
	m.refused.WithLabelValues(wslisten.RefusedPerIP)
	return m
}

// commandTimeSample: one command in this many of each kind is timed.
// Two clock reads cost about 90 ns here, 4% of a chat line's whole path;
// a sample keeps the quantiles and costs an eighth of that.
const commandTimeSample = 8

// timeCommand reports whether to time this run of command idx.
func (m *metrics) timeCommand(idx int) bool {
	return m.commandTicks[idx].Add(1)%commandTimeSample == 1
}

func (m *metrics) connected(transport string) {
	m.connections.WithLabelValues(transport).Inc()
	m.connectsTotal.WithLabelValues(transport).Inc()
}

func (m *metrics) disconnected(transport, reason string) {
	m.connections.WithLabelValues(transport).Dec()
	m.disconnects.WithLabelValues(reasonLabel(reason)).Inc()
}

// reasonLabel maps a free-text reason to a bounded label value.
func reasonLabel(reason string) string {
	switch {
	case reason == "Connection closed":
		return "closed"
	case reason == "Quit" || len(reason) > 5 && reason[:5] == "Quit:":
		return "quit"
	case reason == "SendQ exceeded":
		return "sendq"
	case reason == "Excess flood":
		return "flood"
	case reason == "Registration timed out":
		return "registration_timeout"
	case len(reason) > 12 && reason[:12] == "Ping timeout":
		return "ping_timeout"
	case reason == "Server shutting down":
		return "shutdown"
	case reason == reasonMessageTooLong:
		return "too_long"
	case reason == reasonInvalidUTF8:
		return "invalid_utf8"
	default:
		return "error"
	}
}

func (m *metrics) delivered(recipients int, d time.Duration) {
	m.roomMessages.Inc()
	m.deliveries.Add(float64(recipients))
	m.fanout.Observe(d.Seconds())
}

// CountRefusal counts a connection refused before it became a session,
// such as a WebSocket upgrade from a foreign origin
// (wslisten.Options.Refused).
func (s *Server) CountRefusal(reason string) {
	s.metrics.refused.WithLabelValues(reason).Inc()
}

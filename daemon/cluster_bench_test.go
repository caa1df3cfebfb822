package daemon

import (
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/livechat/livechat/configs"
	"github.com/livechat/livechat/internal/natstest"
)

// BenchmarkClusterHop measures one message from a member on one node to a
// member on another, one at a time: the latency a room adds when its
// members are spread over nodes (sender on the room's home, and not).
func BenchmarkClusterHop(b *testing.B) {
	ns := natstest.RunServer(b, "")
	node := func(name string) string {
		_, addr := testServer(b, func(cfg *configs.Config, opts *Options) {
			joinForTest(b, cfg, opts, ns.ClientURL(), name, 5*time.Second)
			opts.Logger = zerolog.Nop()
		})
		return addr
	}
	addrA, addrB := node("a"), node("b")
	for _, tc := range []struct{ name, from, to string }{
		{"from-home", addrA, addrB},
		{"to-home", addrB, addrA},
	} {
		b.Run(tc.name, func(b *testing.B) {
			home := connect(b, addrA, "h"+tc.name[:2])
			home.join("#hop-" + tc.name)
			from := home
			if tc.from != addrA {
				from = connect(b, tc.from, "f"+tc.name[:2])
				from.join("#hop-" + tc.name)
			}
			to := connect(b, tc.to, "t"+tc.name[:2])
			to.join("#hop-" + tc.name)
			b.ResetTimer()
			start := time.Now()
			for range b.N {
				from.send("PRIVMSG #hop-" + tc.name + " :x")
				to.expect("PRIVMSG")
			}
			b.ReportMetric(float64(time.Since(start).Microseconds())/float64(b.N), "us/hop")
		})
	}
}

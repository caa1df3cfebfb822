package daemon

import (
	"cmp"
	"context"
	"net"
	"syscall"
	"time"
)

// ListenTCP binds a TCP listener for clients whose connections come with
// TCP keepalive on: it is set once on the listening socket, and Linux
// copies a listening socket's options to the connections it accepts. Set
// on each connection it took eight setsockopt calls (Go's default
// keepalive, then ours): ~5% of the daemon's CPU in a connect storm.
// (Elsewhere it is net.Listen, and each connection gets keepAlive.)
func ListenTCP(addr string) (net.Listener, error) {
	lc := net.ListenConfig{KeepAlive: -1, Control: func(_, _ string, c syscall.RawConn) error {
		var err error
		cerr := c.Control(func(fd uintptr) {
			for _, o := range [...]struct{ level, opt, v int }{
				{syscall.SOL_SOCKET, syscall.SO_KEEPALIVE, 1},
				{syscall.IPPROTO_TCP, syscall.TCP_KEEPIDLE, int(keepAliveIdle / time.Second)},
				{syscall.IPPROTO_TCP, syscall.TCP_KEEPINTVL, int(keepAliveInterval / time.Second)},
				{syscall.IPPROTO_TCP, syscall.TCP_KEEPCNT, keepAliveCount},
			} {
				if err == nil {
					err = syscall.SetsockoptInt(int(fd), o.level, o.opt, o.v)
				}
			}
		})
		return cmp.Or(cerr, err)
	}}
	l, err := lc.Listen(context.Background(), "tcp", addr)
	if err != nil {
		return nil, err
	}
	return keepAliveListener{l.(*net.TCPListener)}, nil
}

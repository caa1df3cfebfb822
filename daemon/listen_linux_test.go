package daemon

import (
	"net"
	"syscall"
	"testing"
	"time"
)

// The connections a ListenTCP listener accepts have the keepalive Serve
// no longer sets on each of them.
func TestListenTCPKeepAlive(t *testing.T) {
	l, err := ListenTCP("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if _, ok := l.(keepAliveListener); !ok {
		t.Fatalf("ListenTCP returned a %T, which Serve does not recognise", l)
	}
	c, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	l.(keepAliveListener).SetDeadline(time.Now().Add(10 * time.Second))
	a, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	rc, err := a.(*net.TCPConn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	want := []struct {
		name       string
		level, opt int
		v          int
	}{
		{"SO_KEEPALIVE", syscall.SOL_SOCKET, syscall.SO_KEEPALIVE, 1},
		{"TCP_KEEPIDLE", syscall.IPPROTO_TCP, syscall.TCP_KEEPIDLE, int(keepAliveIdle / time.Second)},
		{"TCP_KEEPINTVL", syscall.IPPROTO_TCP, syscall.TCP_KEEPINTVL, int(keepAliveInterval / time.Second)},
		{"TCP_KEEPCNT", syscall.IPPROTO_TCP, syscall.TCP_KEEPCNT, keepAliveCount},
		{"TCP_NODELAY", syscall.IPPROTO_TCP, syscall.TCP_NODELAY, 1},
	}
	rc.Control(func(fd uintptr) {
		for _, w := range want {
			got, err := syscall.GetsockoptInt(int(fd), w.level, w.opt)
			if err != nil || got != w.v {
				t.Errorf("%s = %d (%v), want %d", w.name, got, err, w.v)
			}
		}
	})
}

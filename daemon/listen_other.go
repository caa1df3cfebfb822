//go:build !linux

package daemon

import "net"

// ListenTCP binds a TCP listener for clients; each connection it accepts
// gets keepAlive (see listen_linux.go for Linux, which sets it once).
func ListenTCP(addr string) (net.Listener, error) {
	return net.Listen("tcp", addr)
}

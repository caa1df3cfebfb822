package daemon

import (
	"net"
	"strconv"
)

// stsValue is the IRCv3 STS policy for a connection over transport, or ""
// for none: on plain TCP the TLS port to move to (the client reconnects
// there and takes the duration from that connection), on TLS how long to
// keep to TLS. WebSocket connections get none: a browser's page decides
// its own scheme, and the policy names an IRC port.
func (srv *Server) stsValue(transport string) string {
	cfg := srv.Config()
	if cfg.Listen.STSDuration <= 0 {
		return ""
	}
	switch transport {
	case "tls":
		return "duration=" + strconv.FormatInt(int64(cfg.Listen.STSDuration.Seconds()), 10)
	case "tcp":
		port := cfg.Listen.STSPort
		if port == 0 {
			port = int(srv.tlsPort.Load())
		}
		if port == 0 {
			if _, p, err := net.SplitHostPort(cfg.Listen.TLS); err == nil {
				port, _ = strconv.Atoi(p)
			}
		}
		if port == 0 {
			return "" // no TLS listener to send anyone to
		}
		return "port=" + strconv.Itoa(port)
	}
	return ""
}

package main

import (
	"net"
	"os"
	"strconv"
	"time"

	"github.com/rs/zerolog"
)

// systemd's notify protocol (sd_notify(3)): a datagram of KEY=VALUE lines
// to the socket in $NOTIFY_SOCKET. With Type=notify the unit is started
// once READY=1 arrives, so units ordered after livechatd find it
// accepting; with WatchdogSec= systemd restarts a daemon that stops
// sending WATCHDOG=1. Outside systemd the variable is unset and every
// call does nothing.

type notifier struct {
	addr *net.UnixAddr // nil: not under systemd
	log  zerolog.Logger
}

func newNotifier(log zerolog.Logger) *notifier {
	n := &notifier{log: log}
	name := os.Getenv("NOTIFY_SOCKET")
	if name == "" {
		return n
	}
	if name[0] == '@' { // an abstract socket
		name = "\x00" + name[1:]
	}
	n.addr = &net.UnixAddr{Name: name, Net: "unixgram"}
	return n
}

// send delivers one state change; a failure is logged, never fatal: the
// daemon serves its clients whether or not systemd hears of it.
func (n *notifier) send(state string) {
	if n.addr == nil {
		return
	}
	conn, err := net.DialUnix("unixgram", nil, n.addr)
	if err == nil {
		_, err = conn.Write([]byte(state))
		conn.Close()
	}
	if err != nil {
		n.log.Warn().Err(err).Str("state", state).Msg("sd_notify failed")
	}
}

func (n *notifier) ready()    { n.send("READY=1\nSTATUS=serving") }
func (n *notifier) stopping() { n.send("STOPPING=1\nSTATUS=draining clients") }

// reloading and reloaded bracket a SIGHUP reload, so `systemctl status`
// shows it. (Type=notify-reload would also want MONOTONIC_USEC; the unit
// uses Type=notify and ExecReload=, which Debian 12's systemd 252 has.)
func (n *notifier) reloading() { n.send("RELOADING=1\nSTATUS=reloading") }
func (n *notifier) reloaded()  { n.send("READY=1\nSTATUS=serving") }

// watchdog sends WATCHDOG=1 at half the interval systemd asked for, as
// long as alive says the daemon is serving, until stop is closed. A
// daemon that stops accepting clients (or hangs) is then restarted.
func (n *notifier) watchdog(alive func() bool, stop <-chan struct{}) {
	if n.addr == nil || os.Getenv("WATCHDOG_USEC") == "" {
		return
	}
	usec, err := strconv.ParseInt(os.Getenv("WATCHDOG_USEC"), 10, 64)
	if err != nil || usec <= 0 {
		return
	}
	if pid := os.Getenv("WATCHDOG_PID"); pid != "" && pid != strconv.Itoa(os.Getpid()) {
		return // meant for another process
	}
	t := time.NewTicker(time.Duration(usec) * time.Microsecond / 2)
	go func() {
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				if alive() {
					n.send("WATCHDOG=1")
				}
			}
		}
	}()
}

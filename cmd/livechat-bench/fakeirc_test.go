package main

import (
	"bufio"
	"net"
	"strings"
	"sync"
	"testing"

	"github.com/livechat/livechat/protocol"
)

// fakeIRC is a minimal IRC server for the smoke tests: NICK/USER -> 001
// (optionally after a PING cookie that must be PONGed), 433 for taken nicks,
// JOIN -> JOIN echo + 366, PRIVMSG #room relayed to the other members, PING ->
// PONG, QUIT -> ERROR + close.
type fakeIRC struct {
	ln             net.Listener
	pingOnRegister bool
	reserved       map[string]bool // nicks answered with 433

	mu      sync.Mutex
	nicks   map[string]*fakeClient
	rooms   map[string]map[*fakeClient]bool
	clients map[*fakeClient]bool
	closed  bool
	wg      sync.WaitGroup
}

type fakeClient struct {
	nc         net.Conn
	wmu        sync.Mutex
	nick       string
	user       bool
	registered bool
	cookie     string
	rooms      map[string]bool
}

func (c *fakeClient) send(s string) {
	c.wmu.Lock()
	c.nc.Write([]byte(s + "\r\n"))
	c.wmu.Unlock()
}

func startFakeIRC(t *testing.T, pingOnRegister bool, reserved ...string) *fakeIRC {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeIRC{
		ln: ln, pingOnRegister: pingOnRegister, reserved: map[string]bool{},
		nicks: map[string]*fakeClient{}, rooms: map[string]map[*fakeClient]bool{}, clients: map[*fakeClient]bool{},
	}
	for _, n := range reserved {
		f.reserved[n] = true
	}
	f.wg.Add(1)
	go func() {
		defer f.wg.Done()
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			c := &fakeClient{nc: nc, rooms: map[string]bool{}}
			f.mu.Lock()
			if f.closed {
				f.mu.Unlock()
				nc.Close()
				return
			}
			f.clients[c] = true
			f.wg.Add(1)
			f.mu.Unlock()
			go f.serve(c)
		}
	}()
	t.Cleanup(f.close)
	return f
}

func (f *fakeIRC) addr() string { return f.ln.Addr().String() }

func (f *fakeIRC) close() {
	f.ln.Close()
	f.mu.Lock()
	f.closed = true
	for c := range f.clients {
		c.nc.Close()
	}
	f.mu.Unlock()
	f.wg.Wait()
}

func (f *fakeIRC) welcome(c *fakeClient) {
	c.registered = true
	c.send(":fake 001 " + c.nick + " :Welcome")
	c.send(":fake 005 " + c.nick + " CHANTYPES=# :are supported")
}

func (f *fakeIRC) maybeRegister(c *fakeClient) {
	if c.registered || c.nick == "" || !c.user || c.cookie != "" {
		return
	}
	if f.pingOnRegister {
		c.cookie = "ck" + c.nick
		c.send("PING :" + c.cookie)
		return
	}
	f.welcome(c)
}

func (f *fakeIRC) serve(c *fakeClient) {
	defer f.wg.Done()
	defer f.drop(c)
	sc := bufio.NewScanner(c.nc)
	for sc.Scan() {
		m, err := protocol.Parse(sc.Bytes())
		if err != nil {
			continue
		}
		switch m.Command {
		case "NICK":
			n := m.Param(0)
			f.mu.Lock()
			_, taken := f.nicks[n]
			if taken || f.reserved[n] {
				f.mu.Unlock()
				c.send(":fake 433 * " + n + " :Nickname is already in use")
				continue
			}
			f.nicks[n] = c
			f.mu.Unlock()
			c.nick = n
			f.maybeRegister(c)
		case "USER":
			c.user = true
			f.maybeRegister(c)
		case "PONG":
			if c.cookie != "" && m.Param(len(m.Params)-1) == c.cookie {
				c.cookie = ""
				f.welcome(c)
			}
		case "PING":
			c.send(":fake PONG fake :" + m.Param(0))
		case "JOIN":
			room := m.Param(0)
			f.mu.Lock()
			if f.rooms[room] == nil {
				f.rooms[room] = map[*fakeClient]bool{}
			}
			f.rooms[room][c] = true
			c.rooms[room] = true
			members := f.members(room, nil)
			f.mu.Unlock()
			for _, o := range members {
				o.send(":" + c.nick + "!u@h JOIN " + room)
			}
			c.send(":fake NOTICE " + c.nick + " :" + strings.Repeat("x", 600)) // over-long: must be skipped
			c.send(":fake 353 " + c.nick + " = " + room + " :" + c.nick)
			c.send(":fake 366 " + c.nick + " " + room + " :End of /NAMES list.")
		case "PRIVMSG":
			room := m.Param(0)
			f.mu.Lock()
			members := f.members(room, c)
			f.mu.Unlock()
			line := ":" + c.nick + "!u@h PRIVMSG " + room + " :" + m.Param(1)
			for _, o := range members {
				o.send(line)
			}
		case "QUIT":
			c.send("ERROR :Closing link")
			return
		}
	}
}

// members lists room's members except skip; f.mu must be held.
func (f *fakeIRC) members(room string, skip *fakeClient) []*fakeClient {
	var out []*fakeClient
	for o := range f.rooms[room] {
		if o != skip {
			out = append(out, o)
		}
	}
	return out
}

func (f *fakeIRC) drop(c *fakeClient) {
	c.nc.Close()
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.clients, c)
	if f.nicks[c.nick] == c {
		delete(f.nicks, c.nick)
	}
	for r := range c.rooms {
		delete(f.rooms[r], c)
	}
}

// lastJSON returns the last line of out that looks like a JSON object.
func lastJSON(out string) string {
	lines := strings.Split(strings.TrimSpace(out), "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		if strings.HasPrefix(lines[i], "{") {
			return lines[i]
		}
	}
	return ""
}

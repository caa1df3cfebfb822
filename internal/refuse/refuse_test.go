package refuse

import (
	"bufio"
	"net"
	"testing"
	"time"
)

const waitFor = 10 * time.Second

// The message arrives whole even when the client had sent something the
// server never read (which would otherwise make the close a reset).
func TestRefuseDeliversTheMessage(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	client, err := net.DialTimeout("tcp", ln.Addr().String(), waitFor)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	srvConn, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	client.Write([]byte("NICK unread\r\n"))
	New(1).Refuse(srvConn, []byte("ERROR :go away\r\n"))
	client.SetReadDeadline(time.Now().Add(waitFor))
	r := bufio.NewReader(client)
	if line, err := r.ReadString('\n'); err != nil || line != "ERROR :go away\r\n" {
		t.Fatalf("got %q, %v", line, err)
	}
	client.Close() // the refuser drains until the client closes
}

// With every slot busy, more refusals close at once instead of piling up
// goroutines.
func TestRefuseBounded(t *testing.T) {
	r := New(2)
	for range cap(r.busy) {
		r.busy <- struct{}{}
	}
	a, b := net.Pipe()
	defer b.Close()
	r.Refuse(a, []byte("x"))
	b.SetReadDeadline(time.Now().Add(waitFor))
	if n, err := b.Read(make([]byte, 10)); n != 0 || err == nil {
		t.Fatalf("read %d, %v; want the connection closed without a message", n, err)
	}
}

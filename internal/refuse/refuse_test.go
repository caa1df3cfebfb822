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

// An HTTP client's request comes first, then the answer.
func TestRefuseRequestWaitsForTheRequest(t *testing.T) {
	a, b := net.Pipe()
	defer b.Close()
	New(1).RefuseRequest(a, []byte("HTTP/1.1 429 Too Many Requests\r\n\r\n"))
	b.SetDeadline(time.Now().Add(waitFor))
	got := make(chan string, 1)
	go func() {
		line, _ := bufio.NewReader(b).ReadString('\n')
		got <- line
	}()
	select {
	case line := <-got:
		t.Fatalf("answered %q before the request", line)
	case <-time.After(50 * time.Millisecond): // the answer must wait; this only bounds how long we look
	}
	if _, err := b.Write([]byte("GET / HTTP/1.1\r\n\r\n")); err != nil {
		t.Fatal(err)
	}
	if line := <-got; line != "HTTP/1.1 429 Too Many Requests\r\n" {
		t.Fatalf("got %q", line)
	}
}

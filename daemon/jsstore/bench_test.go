package jsstore

import (
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/livechat/livechat/daemon/accounts"
	"github.com/livechat/livechat/internal/natstest"
)

// BenchmarkSetReadMarker moves markers from many goroutines at once, as
// many readers would, against one embedded NATS server (compare with the
// file store's benchmark of the same name in daemon/accounts).
func BenchmarkSetReadMarker(b *testing.B) {
	s := natstest.RunServer(b, "")
	a := openAccounts(b, natstest.Connect(b, s.ClientURL()), Options{Prefix: "B"})
	const users = 64
	for i := range users {
		if err := a.Create(bg, accounts.Account{Name: fmt.Sprint("user", i), Hash: "h"}); err != nil {
			b.Fatal(err)
		}
	}
	start := time.Now()
	var n atomic.Int64
	b.SetParallelism(8)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := n.Add(1)
			if _, _, err := a.SetReadMarker(bg, fmt.Sprint("user", i%users), fmt.Sprint("#room", i%16), start.Add(time.Duration(i)*time.Millisecond)); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkGet is the read on every login: one direct get.
func BenchmarkGet(b *testing.B) {
	s := natstest.RunServer(b, "")
	a := openAccounts(b, natstest.Connect(b, s.ClientURL()), Options{Prefix: "B"})
	if err := a.Create(bg, accounts.Account{Name: "alice", Hash: "h"}); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for b.Loop() {
		if _, err := a.Get(bg, "alice"); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkCreate is a REGISTER's write: one KV create.
func BenchmarkCreate(b *testing.B) {
	s := natstest.RunServer(b, "")
	a := openAccounts(b, natstest.Connect(b, s.ClientURL()), Options{Prefix: "B"})
	i := 0
	for b.Loop() {
		i++
		if err := a.Create(bg, accounts.Account{Name: fmt.Sprint("user", i), Hash: "h"}); err != nil {
			b.Fatal(err)
		}
	}
}

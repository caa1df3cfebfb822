package rooms

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

// TestRingCertainAnswersMatchTheLog checks the cache rule everything rests
// on: whenever the ring says its answer is certain, the full log gives the
// same answer; otherwise the caller asks the log.
func TestRingCertainAnswersMatchTheLog(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	commands := []string{"PRIVMSG", "PRIVMSG", "NOTICE", "JOIN", "PART"}
	checked, fromLog := 0, 0
	for round := range 300 {
		ringSize := 1 + rng.IntN(8)
		ring := NewHistory(ringSize)
		full := NewMemLog(0, 0)
		full.max = 1 << 30
		var all []*Event
		at := time.Unix(1_700_000_000, 0)
		for i := range rng.IntN(30) {
			at = at.Add(time.Duration(rng.IntN(3)) * time.Millisecond) // equal times happen
			e := &Event{At: at, ID: fmt.Sprint("m", i), Command: commands[rng.IntN(len(commands))]}
			all = append(all, e)
			ring.Add(e)
			full.Append("#t", e)
		}
		bound := func() Bound {
			switch rng.IntN(4) {
			case 0:
				return Bound{}
			case 1:
				return Bound{ID: fmt.Sprint("m", rng.IntN(len(all)+2))} // some unknown
			default:
				return Bound{At: time.Unix(1_700_000_000, 0).Add(time.Duration(rng.IntN(60)-5) * time.Millisecond)}
			}
		}
		for range 50 {
			q := Query{Sel: Selector(rng.IntN(5)), A: bound(), B: bound(), Limit: 1 + rng.IntN(6), Events: rng.IntN(2) == 0}
			if q.Sel != SelLatest && q.A.Unbounded() {
				q.A = Bound{At: time.Unix(1_700_000_000, 0)}
			}
			if q.Sel == SelBetween && q.B.Unbounded() {
				q.B = Bound{At: at}
			}
			got, certain := ring.Query(q)
			want, _ := full.Query("#t", q)
			if rng.IntN(2) == 0 {
				// The same from a ring warmed from the log, as after a restart.
				events, _ := full.Query("#t", Query{Sel: SelLatest, Limit: ringSize, Events: true})
				msgs, _ := full.Query("#t", Query{Sel: SelLatest, Limit: ringSize})
				warmed := NewHistory(ringSize)
				warmed.Warm(events, msgs, len(events) < ringSize, len(msgs) < ringSize)
				got, certain = warmed.Query(q)
			}
			if !certain {
				fromLog++
				continue
			}
			checked++
			if !slices.Equal(ids(got), ids(want)) {
				t.Fatalf("round %d: ring of %d over %d events, %+v: ring says certain %v, log has %v", round, ringSize, len(all), q, ids(got), ids(want))
			}
		}
	}
	if checked < 1000 || fromLog < 1000 {
		t.Fatalf("only %d certain answers checked and %d sent to the log", checked, fromLog)
	}
	t.Logf("%d certain answers matched the log; %d went to the log", checked, fromLog)
}

func ids(events []*Event) []string {
	out := make([]string, len(events))
	for i, e := range events {
		out[i] = e.ID
	}
	return out
}

// TestRingAnswersRecentQueriesItself: the common queries (the latest
// page, what came after a recent message) never reach the log.
func TestRingAnswersRecentQueriesItself(t *testing.T) {
	h := NewHistory(10)
	for i := range 25 {
		h.Add(&Event{At: time.Unix(int64(i), 0), ID: fmt.Sprint("m", i), Command: "PRIVMSG"})
	}
	for _, q := range []Query{
		{Sel: SelLatest, Limit: 5},
		{Sel: SelAfter, A: Bound{ID: "m20"}, Limit: 5},
		{Sel: SelBefore, A: Bound{ID: "m24"}, Limit: 5},
		{Sel: SelLatest, A: Bound{ID: "m22"}, Limit: 5},
	} {
		if _, certain := h.Query(q); !certain {
			t.Errorf("%+v went to the log", q)
		}
	}
	for _, q := range []Query{
		{Sel: SelLatest, Limit: 20},
		{Sel: SelBefore, A: Bound{ID: "m16"}, Limit: 5},
		{Sel: SelAfter, A: Bound{ID: "m3"}, Limit: 5},
	} {
		if _, certain := h.Query(q); certain {
			t.Errorf("%+v answered from a ring that lacks older events", q)
		}
	}
}

package main

import (
	"bytes"
	"fmt"
	"testing"
)

// TestEnginesAnswerAlike checks that both engines return exactly the
// events a query selects, so the benchmark compares equal work.
func TestEnginesAnswerAlike(t *testing.T) {
	for _, en := range []string{"bbolt", "bbolt-default", "bbolt-flat", "pebble"} {
		t.Run(en, func(t *testing.T) {
			e, err := open(en, t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			defer e.close()
			g := newGen(3, 1_000_000, 5, 1)
			var all []rec // target 0's events, in order
			var recs []rec
			for i := range 3000 {
				r := g.next(0)
				all = append(all, r)
				recs = append(recs, r, g.next(uint32(1+i%2)))
				if len(recs) >= 500 {
					if err := e.commit(recs, i%2 == 0); err != nil {
						t.Fatal(err)
					}
					recs = recs[:0]
				}
			}
			if err := e.commit(recs, true); err != nil {
				t.Fatal(err)
			}
			var out result
			check := func(what string, want []rec) {
				t.Helper()
				if out.len() != len(want) {
					t.Fatalf("%s: %d events, want %d", what, out.len(), len(want))
				}
				for i, w := range want {
					if !bytes.Equal(out.at(i), w.val) {
						t.Fatalf("%s: event %d is %q, want seq %d", what, i, valID(out.at(i)), w.seq)
					}
				}
			}
			if err := e.latest(0, 100, &out); err != nil {
				t.Fatal(err)
			}
			check("latest", all[len(all)-100:])
			for _, i := range []int{0, 1, 50, 99, 100, 1500, 2999} {
				a := all[i]
				if err := e.before(0, a.id, 100, &out); err != nil {
					t.Fatal(err)
				}
				check(fmt.Sprint("before ", i), all[max(0, i-100):i])
				if err := e.afterTime(0, a.at, 100, &out); err != nil {
					t.Fatal(err)
				}
				check(fmt.Sprint("after time ", i), all[i:min(len(all), i+100)])
				if err := e.around(0, a.id, 100, &out); err != nil {
					t.Fatal(err)
				}
				lo := max(0, i-50)
				check(fmt.Sprint("around ", i), all[lo:min(len(all), lo+100)])
			}
			if err := e.before(1, all[10].id, 10, &out); err != errNotFound {
				t.Fatalf("a msgid of another target: %v, want errNotFound", err)
			}
			// Retention: everything before event 1000 goes, in two groups.
			n1, err := e.deleteBefore(0, all[1000].at, 600)
			if err != nil {
				t.Fatal(err)
			}
			n2, err := e.deleteBefore(0, all[1000].at, 600)
			if err != nil {
				t.Fatal(err)
			}
			if n1 != 600 || n2 != 400 {
				t.Fatalf("deleted %d+%d, want 600+400", n1, n2)
			}
			if err := e.before(0, all[999].id, 10, &out); err != errNotFound {
				t.Fatalf("deleted event's msgid: %v, want errNotFound", err)
			}
			if err := e.before(0, all[1005].id, 100, &out); err != nil {
				t.Fatal(err)
			}
			check("before after retention", all[1000:1005])
			if err := e.afterTime(0, 0, 100, &out); err != nil {
				t.Fatal(err)
			}
			check("after time 0 after retention", all[1000:1100])
			if err := e.settle(); err != nil {
				t.Fatal(err)
			}
			if err := e.latest(0, 100, &out); err != nil {
				t.Fatal(err)
			}
			check("latest after settle", all[len(all)-100:])
		})
	}
}

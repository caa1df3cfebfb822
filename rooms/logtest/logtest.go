// Package logtest is the conformance suite for rooms.Log: every store
// (memory, the embedded file, a stream) runs the same cases, so rooms can
// rely on one behaviour whatever answers behind the seam.
//
// The reference semantics are rooms.History's: positions are the order of
// Append within a target; a msgid bound sits at its event, a time bound
// between the events before it and those at or after it; only PRIVMSG and
// NOTICE count and are returned unless Query.Events is set.
package logtest

import (
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/livechat/livechat/protocol"
	"github.com/livechat/livechat/rooms"
)

// Run runs every case against fresh logs made by open, which must return an
// empty log and arrange its own cleanup (t.Cleanup).
func Run(t *testing.T, open func(t *testing.T) rooms.Log) {
	cases := []struct {
		name string
		fn   func(*testing.T, rooms.Log)
	}{
		{"Empty", testEmpty},
		{"Fields", testFields},
		{"Latest", testLatest},
		{"LatestBound", testLatestBound},
		{"Before", testBefore},
		{"After", testAfter},
		{"Around", testAround},
		{"Between", testBetween},
		{"TimeTies", testTimeTies},
		{"UnknownMsgid", testUnknownMsgid},
		{"Limit", testLimit},
		{"EventsFilter", testEventsFilter},
		{"FilterScansOn", testFilterScansOn},
		{"ReadYourWrites", testReadYourWrites},
		{"Redact", testRedact},
		{"RedactSameIDElsewhere", testRedactSameID},
		{"Delete", testDelete},
		{"Targets", testTargets},
		{"ManyTargets", testManyTargets},
		{"Concurrent", testConcurrent},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) { c.fn(t, open(t)) })
	}
}

// base is the time of event 1; event i happens i-1 seconds later, so time
// bounds between events are easy to name.
var base = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// at returns the time of event i.
func at(i int) time.Time { return base.Add(time.Duration(i-1) * time.Second) }

// msg returns PRIVMSG number i ("m<i>").
func msg(i int) *rooms.Event {
	return &rooms.Event{
		At:      at(i),
		ID:      fmt.Sprintf("m%d", i),
		Source:  "alice!a@example.org",
		Account: "Alice",
		Origin:  "a:alice",
		Command: "PRIVMSG",
		Params:  []string{"#room", fmt.Sprintf("line %d", i)},
	}
}

// other returns event i with another command (JOIN, TOPIC, TAGMSG...).
func other(i int, cmd string) *rooms.Event {
	e := msg(i)
	e.Command = cmd
	e.Params = []string{"#room"}
	return e
}

func appendAll(l rooms.Log, target string, events ...*rooms.Event) {
	for _, e := range events {
		l.Append(target, e)
	}
}

// msgs returns PRIVMSGs from..to inclusive.
func msgs(from, to int) []*rooms.Event {
	var out []*rooms.Event
	for i := from; i <= to; i++ {
		out = append(out, msg(i))
	}
	return out
}

func query(t *testing.T, l rooms.Log, target string, q rooms.Query) []*rooms.Event {
	t.Helper()
	got, err := l.Query(target, q)
	if err != nil {
		t.Fatalf("Query(%q, %+v): %v", target, q, err)
	}
	return got
}

// ids lists events' msgids, for readable failures.
func ids(events []*rooms.Event) string {
	s := make([]string, len(events))
	for i, e := range events {
		s[i] = e.ID
	}
	return "[" + strings.Join(s, " ") + "]"
}

// idRange names msgids m<from>..m<to>, or none when from > to.
func idRange(from, to int) string {
	var s []string
	for i := from; i <= to; i++ {
		s = append(s, fmt.Sprintf("m%d", i))
	}
	return "[" + strings.Join(s, " ") + "]"
}

func expectIDs(t *testing.T, what string, got []*rooms.Event, want string) {
	t.Helper()
	if g := ids(got); g != want {
		t.Errorf("%s = %s, want %s", what, g, want)
	}
}

// Equal reports whether two events carry the same fields, with times equal
// to the millisecond. nil and empty lists are the same, except ExtParams,
// whose nil means "no extended form".
func Equal(a, b *rooms.Event) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.At.Truncate(time.Millisecond).Equal(b.At.Truncate(time.Millisecond)) &&
		a.ID == b.ID && a.Source == b.Source && a.Account == b.Account &&
		a.Origin == b.Origin && a.Command == b.Command &&
		slices.Equal(a.Params, b.Params) &&
		(a.ExtParams == nil) == (b.ExtParams == nil) && slices.Equal(a.ExtParams, b.ExtParams) &&
		slices.Equal(a.Tags, b.Tags) && slices.Equal(a.Lines, b.Lines)
}

func bID(id string) rooms.Bound   { return rooms.Bound{ID: id} }
func bAt(t time.Time) rooms.Bound { return rooms.Bound{At: t} }
func bMsg(i int) rooms.Bound      { return bID(fmt.Sprintf("m%d", i)) }
func star() rooms.Bound           { return rooms.Bound{} }
func half(i int) time.Time        { return at(i).Add(500 * time.Millisecond) }
func q(sel rooms.Selector, a rooms.Bound, limit int) rooms.Query {
	return rooms.Query{Sel: sel, A: a, Limit: limit}
}

func testEmpty(t *testing.T, l rooms.Log) {
	for _, sel := range []rooms.Selector{rooms.SelLatest, rooms.SelBefore, rooms.SelAfter, rooms.SelAround} {
		if got := query(t, l, "#none", q(sel, bAt(at(1)), 10)); len(got) != 0 {
			t.Errorf("selector %d on an empty target = %s", sel, ids(got))
		}
	}
	if got := query(t, l, "#none", q(rooms.SelLatest, star(), 10)); len(got) != 0 {
		t.Errorf("LATEST * on an empty target = %s", ids(got))
	}
	ts, err := l.Targets("")
	if err != nil || len(ts) != 0 {
		t.Errorf("Targets on an empty log = %v, %v", ts, err)
	}
	if e, err := l.Redact("#none", "m1"); e != nil || err != nil {
		t.Errorf("Redact on an empty log = %v, %v", e, err)
	}
	if err := l.Delete("#none"); err != nil {
		t.Errorf("Delete of an unknown target: %v", err)
	}
	if err := l.Sync(); err != nil {
		t.Errorf("Sync: %v", err)
	}
}

// testFields checks that every field comes back as appended.
func testFields(t *testing.T, l rooms.Log) {
	full := &rooms.Event{
		At:        time.Date(2026, 3, 1, 12, 0, 0, 123_000_000, time.UTC),
		ID:        "full",
		Source:    "Bob!~b@host.example",
		Account:   "Bob",
		Origin:    "a:bob",
		Command:   "PRIVMSG",
		Params:    []string{"#Room", "with spaces, :colons, ünïcödé and an emoji 🎉", ""},
		ExtParams: nil,
		Tags:      []protocol.Tag{{Key: "+draft/reply", Value: "m1"}, {Key: "+flag"}},
	}
	join := &rooms.Event{
		At:        full.At.Add(time.Millisecond),
		ID:        "join",
		Source:    "carol!c@h",
		Origin:    "c:conn42",
		Command:   "JOIN",
		Params:    []string{"#Room"},
		ExtParams: []string{"#Room", "*", "Carol Realname"},
	}
	noID := &rooms.Event{At: full.At.Add(2 * time.Millisecond), Source: "srv", Command: "MODE", Params: []string{"#Room", "+m"}}
	react := &rooms.Event{
		At: full.At.Add(3 * time.Millisecond), ID: "react", Source: "d!d@d", Command: "TAGMSG",
		Params: []string{"#Room"}, Tags: []protocol.Tag{{Key: "+draft/react", Value: "👍"}, {Key: "+draft/reply", Value: "full"}},
	}
	custom := &rooms.Event{At: full.At.Add(4 * time.Millisecond), ID: "custom", Command: "X-UNKNOWN", Params: []string{}, ExtParams: []string{}}
	text, lines := rooms.JoinLines([]rooms.Line{{Text: ""}, {Text: "two "}, {Text: "halves", Concat: true}, {Text: "ünï"}})
	multi := &rooms.Event{
		At: full.At.Add(5 * time.Millisecond), ID: "multi", Source: "e!e@e", Command: "PRIVMSG",
		Params: []string{"#Room", text}, Lines: lines,
	}
	want := []*rooms.Event{full, join, noID, react, custom, multi}
	appendAll(l, "#room", want...)
	got := query(t, l, "#room", rooms.Query{Sel: rooms.SelLatest, Limit: 10, Events: true})
	if len(got) != len(want) {
		t.Fatalf("got %d events, want %d", len(got), len(want))
	}
	for i := range want {
		if !Equal(got[i], want[i]) {
			t.Errorf("event %d:\n got %+v\nwant %+v", i, *got[i], *want[i])
		}
	}
	if err := l.Sync(); err != nil {
		t.Fatal(err)
	}
	got = query(t, l, "#room", rooms.Query{Sel: rooms.SelLatest, Limit: 10, Events: true})
	for i := range min(len(got), len(want)) {
		if !Equal(got[i], want[i]) {
			t.Errorf("after Sync, event %d:\n got %+v\nwant %+v", i, *got[i], *want[i])
		}
	}
}

func testLatest(t *testing.T, l rooms.Log) {
	appendAll(l, "#room", msgs(1, 10)...)
	expectIDs(t, "LATEST * 3", query(t, l, "#room", q(rooms.SelLatest, star(), 3)), idRange(8, 10))
	expectIDs(t, "LATEST * 100", query(t, l, "#room", q(rooms.SelLatest, star(), 100)), idRange(1, 10))
	l.Sync()
	expectIDs(t, "LATEST * 3 after Sync", query(t, l, "#room", q(rooms.SelLatest, star(), 3)), idRange(8, 10))
	appendAll(l, "#room", msgs(11, 12)...)
	expectIDs(t, "LATEST * 4 across Sync", query(t, l, "#room", q(rooms.SelLatest, star(), 4)), idRange(9, 12))
}

func testLatestBound(t *testing.T, l rooms.Log) {
	appendAll(l, "#room", msgs(1, 10)...)
	for _, synced := range []bool{false, true} {
		if synced {
			l.Sync()
		}
		expectIDs(t, "LATEST m4 100", query(t, l, "#room", q(rooms.SelLatest, bMsg(4), 100)), idRange(5, 10))
		expectIDs(t, "LATEST m4 2", query(t, l, "#room", q(rooms.SelLatest, bMsg(4), 2)), idRange(9, 10))
		expectIDs(t, "LATEST m10", query(t, l, "#room", q(rooms.SelLatest, bMsg(10), 5)), "[]")
		expectIDs(t, "LATEST time(4) 100", query(t, l, "#room", q(rooms.SelLatest, bAt(at(4)), 100)), idRange(5, 10))
		expectIDs(t, "LATEST time(4.5) 100", query(t, l, "#room", q(rooms.SelLatest, bAt(half(4)), 100)), idRange(5, 10))
		expectIDs(t, "LATEST time(0) 3", query(t, l, "#room", q(rooms.SelLatest, bAt(at(0)), 3)), idRange(8, 10))
	}
}

func testBefore(t *testing.T, l rooms.Log) {
	appendAll(l, "#room", msgs(1, 10)...)
	for _, synced := range []bool{false, true} {
		if synced {
			l.Sync()
		}
		expectIDs(t, "BEFORE m5 2", query(t, l, "#room", q(rooms.SelBefore, bMsg(5), 2)), idRange(3, 4))
		expectIDs(t, "BEFORE m5 100", query(t, l, "#room", q(rooms.SelBefore, bMsg(5), 100)), idRange(1, 4))
		expectIDs(t, "BEFORE m1", query(t, l, "#room", q(rooms.SelBefore, bMsg(1), 100)), "[]")
		expectIDs(t, "BEFORE time(5) 2", query(t, l, "#room", q(rooms.SelBefore, bAt(at(5)), 2)), idRange(3, 4))
		expectIDs(t, "BEFORE time(4.5) 2", query(t, l, "#room", q(rooms.SelBefore, bAt(half(4)), 2)), idRange(3, 4))
		expectIDs(t, "BEFORE time(100) 3", query(t, l, "#room", q(rooms.SelBefore, bAt(at(100)), 3)), idRange(8, 10))
		expectIDs(t, "BEFORE time(0)", query(t, l, "#room", q(rooms.SelBefore, bAt(at(0)), 3)), "[]")
	}
}

func testAfter(t *testing.T, l rooms.Log) {
	appendAll(l, "#room", msgs(1, 10)...)
	for _, synced := range []bool{false, true} {
		if synced {
			l.Sync()
		}
		expectIDs(t, "AFTER m5 2", query(t, l, "#room", q(rooms.SelAfter, bMsg(5), 2)), idRange(6, 7))
		expectIDs(t, "AFTER m5 100", query(t, l, "#room", q(rooms.SelAfter, bMsg(5), 100)), idRange(6, 10))
		expectIDs(t, "AFTER m10", query(t, l, "#room", q(rooms.SelAfter, bMsg(10), 100)), "[]")
		expectIDs(t, "AFTER time(5) 2", query(t, l, "#room", q(rooms.SelAfter, bAt(at(5)), 2)), idRange(6, 7))
		expectIDs(t, "AFTER time(4.5) 2", query(t, l, "#room", q(rooms.SelAfter, bAt(half(4)), 2)), idRange(5, 6))
		expectIDs(t, "AFTER time(0) 3", query(t, l, "#room", q(rooms.SelAfter, bAt(at(0)), 3)), idRange(1, 3))
		expectIDs(t, "AFTER time(100)", query(t, l, "#room", q(rooms.SelAfter, bAt(at(100)), 3)), "[]")
	}
}

func testAround(t *testing.T, l rooms.Log) {
	appendAll(l, "#room", msgs(1, 10)...)
	for _, synced := range []bool{false, true} {
		if synced {
			l.Sync()
		}
		expectIDs(t, "AROUND m5 4", query(t, l, "#room", q(rooms.SelAround, bMsg(5), 4)), idRange(3, 6))
		expectIDs(t, "AROUND m5 5", query(t, l, "#room", q(rooms.SelAround, bMsg(5), 5)), idRange(3, 7))
		expectIDs(t, "AROUND m1 4", query(t, l, "#room", q(rooms.SelAround, bMsg(1), 4)), idRange(1, 4))
		expectIDs(t, "AROUND m10 4", query(t, l, "#room", q(rooms.SelAround, bMsg(10), 4)), idRange(8, 10))
		expectIDs(t, "AROUND m5 1", query(t, l, "#room", q(rooms.SelAround, bMsg(5), 1)), idRange(5, 5))
		expectIDs(t, "AROUND time(5) 4", query(t, l, "#room", q(rooms.SelAround, bAt(at(5)), 4)), idRange(3, 6))
		expectIDs(t, "AROUND time(4.5) 4", query(t, l, "#room", q(rooms.SelAround, bAt(half(4)), 4)), idRange(3, 6))
		expectIDs(t, "AROUND time(100) 4", query(t, l, "#room", q(rooms.SelAround, bAt(at(100)), 4)), idRange(9, 10))
	}
}

func testBetween(t *testing.T, l rooms.Log) {
	appendAll(l, "#room", msgs(1, 10)...)
	between := func(a, b rooms.Bound, limit int) []*rooms.Event {
		return query(t, l, "#room", rooms.Query{Sel: rooms.SelBetween, A: a, B: b, Limit: limit})
	}
	for _, synced := range []bool{false, true} {
		if synced {
			l.Sync()
		}
		expectIDs(t, "BETWEEN m2 m9 100", between(bMsg(2), bMsg(9), 100), idRange(3, 8))
		expectIDs(t, "BETWEEN m2 m9 3 (ascending: nearest A)", between(bMsg(2), bMsg(9), 3), idRange(3, 5))
		expectIDs(t, "BETWEEN m9 m2 3 (descending: nearest A)", between(bMsg(9), bMsg(2), 3), idRange(6, 8))
		expectIDs(t, "BETWEEN m9 m2 100", between(bMsg(9), bMsg(2), 100), idRange(3, 8))
		expectIDs(t, "BETWEEN m4 m5", between(bMsg(4), bMsg(5), 100), "[]")
		expectIDs(t, "BETWEEN m4 m4", between(bMsg(4), bMsg(4), 100), "[]")
		expectIDs(t, "BETWEEN time(2) time(9) 100", between(bAt(at(2)), bAt(at(9)), 100), idRange(3, 8))
		expectIDs(t, "BETWEEN time(1.5) time(8.5) 3", between(bAt(half(1)), bAt(half(8)), 3), idRange(2, 4))
		expectIDs(t, "BETWEEN time(9) time(2) 3", between(bAt(at(9)), bAt(at(2)), 3), idRange(6, 8))
		expectIDs(t, "BETWEEN m2 time(9) 100", between(bMsg(2), bAt(at(9)), 100), idRange(3, 8))
		expectIDs(t, "BETWEEN time(0) time(100) 100", between(bAt(at(0)), bAt(at(100)), 100), idRange(1, 10))
	}
}

// testTimeTies puts several events in the same millisecond, as a busy room
// does: a time bound sits before all of them (BEFORE excludes them, AROUND
// starts with them) and after all of them (AFTER excludes them).
func testTimeTies(t *testing.T, l rooms.Log) {
	events := msgs(1, 9)
	for _, i := range []int{4, 5, 6} {
		events[i-1].At = at(5)
	}
	appendAll(l, "#room", events...)
	for _, synced := range []bool{false, true} {
		if synced {
			l.Sync()
		}
		expectIDs(t, "BEFORE time(5)", query(t, l, "#room", q(rooms.SelBefore, bAt(at(5)), 100)), idRange(1, 3))
		expectIDs(t, "AFTER time(5)", query(t, l, "#room", q(rooms.SelAfter, bAt(at(5)), 100)), idRange(7, 9))
		expectIDs(t, "LATEST time(5)", query(t, l, "#room", q(rooms.SelLatest, bAt(at(5)), 100)), idRange(7, 9))
		expectIDs(t, "AROUND time(5) 4", query(t, l, "#room", q(rooms.SelAround, bAt(at(5)), 4)), idRange(2, 5))
		expectIDs(t, "BEFORE m5", query(t, l, "#room", q(rooms.SelBefore, bMsg(5), 100)), idRange(1, 4))
		expectIDs(t, "AFTER m5", query(t, l, "#room", q(rooms.SelAfter, bMsg(5), 100)), idRange(6, 9))
	}
}

func testUnknownMsgid(t *testing.T, l rooms.Log) {
	appendAll(l, "#room", msgs(1, 10)...)
	appendAll(l, "#other", msg(42))
	for _, synced := range []bool{false, true} {
		if synced {
			l.Sync()
		}
		for _, sel := range []rooms.Selector{rooms.SelLatest, rooms.SelBefore, rooms.SelAfter, rooms.SelAround} {
			for _, id := range []string{"nope", "m42"} {
				expectIDs(t, fmt.Sprintf("selector %d %s", sel, id), query(t, l, "#room", q(sel, bID(id), 100)), "[]")
			}
		}
		between := func(a, b rooms.Bound) []*rooms.Event {
			return query(t, l, "#room", rooms.Query{Sel: rooms.SelBetween, A: a, B: b, Limit: 100})
		}
		expectIDs(t, "BETWEEN nope m9", between(bID("nope"), bMsg(9)), "[]")
		expectIDs(t, "BETWEEN m2 nope", between(bMsg(2), bID("nope")), "[]")
		expectIDs(t, "BETWEEN nope time", between(bID("nope"), bAt(at(100))), "[]")
	}
}

func testLimit(t *testing.T, l rooms.Log) {
	appendAll(l, "#room", msgs(1, 300)...)
	l.Sync()
	appendAll(l, "#room", msgs(301, 310)...)
	expectIDs(t, "LATEST * 0", query(t, l, "#room", q(rooms.SelLatest, star(), 0)), "[]")
	expectIDs(t, "BEFORE m5 0", query(t, l, "#room", q(rooms.SelBefore, bMsg(5), 0)), "[]")
	expectIDs(t, "LATEST * 15 across the pending edge", query(t, l, "#room", q(rooms.SelLatest, star(), 15)), idRange(296, 310))
	expectIDs(t, "AFTER m295 10 across the pending edge", query(t, l, "#room", q(rooms.SelAfter, bMsg(295), 10)), idRange(296, 305))
	expectIDs(t, "BEFORE m305 10 across the pending edge", query(t, l, "#room", q(rooms.SelBefore, bMsg(305), 10)), idRange(295, 304))
	expectIDs(t, "AROUND m300 6 across the pending edge", query(t, l, "#room", q(rooms.SelAround, bMsg(300), 6)), idRange(297, 302))
	got := query(t, l, "#room", q(rooms.SelLatest, star(), 1000))
	expectIDs(t, "LATEST * 1000", got, idRange(1, 310))
}

// testEventsFilter mixes messages with other events: without Events only
// PRIVMSG and NOTICE count toward the limit and come back; a bound on an
// event the filter hides still places the query.
func testEventsFilter(t *testing.T, l rooms.Log) {
	cmds := map[int]string{2: "JOIN", 4: "TOPIC", 5: "NOTICE", 6: "TAGMSG", 8: "PART", 9: "MODE", 11: "QUIT", 12: "NICK", 13: "KICK"}
	for i := 1; i <= 14; i++ {
		if c, ok := cmds[i]; ok && c != "NOTICE" {
			l.Append("#room", other(i, c))
		} else {
			e := msg(i)
			if c == "NOTICE" {
				e.Command = "NOTICE"
			}
			l.Append("#room", e)
		}
	}
	// Messages: 1 3 5 7 10 14.
	ev := func(sel rooms.Selector, a rooms.Bound, limit int, events bool) []*rooms.Event {
		return query(t, l, "#room", rooms.Query{Sel: sel, A: a, Limit: limit, Events: events})
	}
	for _, synced := range []bool{false, true} {
		if synced {
			l.Sync()
		}
		expectIDs(t, "LATEST * 3 messages", ev(rooms.SelLatest, star(), 3, false), "[m7 m10 m14]")
		expectIDs(t, "LATEST * 3 events", ev(rooms.SelLatest, star(), 3, true), "[m12 m13 m14]")
		expectIDs(t, "LATEST * all messages", ev(rooms.SelLatest, star(), 100, false), "[m1 m3 m5 m7 m10 m14]")
		expectIDs(t, "LATEST * all events", ev(rooms.SelLatest, star(), 100, true), idRange(1, 14))
		expectIDs(t, "BEFORE m8(PART) 2 messages", ev(rooms.SelBefore, bMsg(8), 2, false), "[m5 m7]")
		expectIDs(t, "AFTER m8(PART) 2 messages", ev(rooms.SelAfter, bMsg(8), 2, false), "[m10 m14]")
		expectIDs(t, "AFTER m3 3 events", ev(rooms.SelAfter, bMsg(3), 3, true), "[m4 m5 m6]")
		expectIDs(t, "AROUND m6(TAGMSG) 4 messages", ev(rooms.SelAround, bMsg(6), 4, false), "[m3 m5 m7 m10]")
		expectIDs(t, "AROUND m7 4 messages", ev(rooms.SelAround, bMsg(7), 4, false), "[m3 m5 m7 m10]")
		expectIDs(t, "LATEST m9(MODE) messages", ev(rooms.SelLatest, bMsg(9), 100, false), "[m10 m14]")
		expectIDs(t, "BEFORE time(9) 2 messages", ev(rooms.SelBefore, bAt(at(9)), 2, false), "[m5 m7]")
		got := query(t, l, "#room", rooms.Query{Sel: rooms.SelBetween, A: bMsg(2), B: bMsg(13), Limit: 3})
		expectIDs(t, "BETWEEN m2 m13 3 messages", got, "[m3 m5 m7]")
		got = query(t, l, "#room", rooms.Query{Sel: rooms.SelBetween, A: bMsg(13), B: bMsg(2), Limit: 3})
		expectIDs(t, "BETWEEN m13 m2 3 messages", got, "[m5 m7 m10]")
	}
}

// testFilterScansOn puts many events between messages: a query without
// Events must look past them for its messages, not stop at the first page.
func testFilterScansOn(t *testing.T, l rooms.Log) {
	l.Append("#room", msg(1))
	l.Append("#room", msg(2))
	for i := 3; i <= 2002; i++ {
		l.Append("#room", other(i, "JOIN"))
	}
	l.Sync()
	l.Append("#room", other(2003, "PART"))
	expectIDs(t, "LATEST * 2 messages", query(t, l, "#room", q(rooms.SelLatest, star(), 2)), "[m1 m2]")
	expectIDs(t, "AFTER m1 5 messages", query(t, l, "#room", q(rooms.SelAfter, bMsg(1), 5)), "[m2]")
	l.Append("#room", msg(2004))
	expectIDs(t, "BEFORE m2004 5", query(t, l, "#room", q(rooms.SelBefore, bMsg(2004), 5)), "[m1 m2]")
}

func testReadYourWrites(t *testing.T, l rooms.Log) {
	for i := 1; i <= 200; i++ {
		e := msg(i)
		l.Append("#room", e)
		got := query(t, l, "#room", q(rooms.SelLatest, star(), 1))
		if len(got) != 1 || got[0].ID != e.ID {
			t.Fatalf("after appending %s, LATEST 1 = %s", e.ID, ids(got))
		}
		if i%50 == 0 {
			if err := l.Sync(); err != nil {
				t.Fatal(err)
			}
		}
	}
	expectIDs(t, "LATEST * 200", query(t, l, "#room", q(rooms.SelLatest, star(), 200)), idRange(1, 200))
}

func testRedact(t *testing.T, l rooms.Log) {
	appendAll(l, "#room", msgs(1, 10)...)
	l.Sync()
	appendAll(l, "#room", msgs(11, 12)...)
	for _, id := range []int{5, 11} { // one on disk, one pending
		name := fmt.Sprintf("m%d", id)
		e, err := l.Redact("#room", name)
		if err != nil {
			t.Fatal(err)
		}
		if !Equal(e, msg(id)) {
			t.Fatalf("Redact(%s) = %+v, want the event", name, e)
		}
		if e, err := l.Redact("#room", name); e != nil || err != nil {
			t.Errorf("second Redact(%s) = %v, %v, want nil", name, e, err)
		}
	}
	if e, err := l.Redact("#room", "nope"); e != nil || err != nil {
		t.Errorf("Redact(unknown) = %v, %v, want nil", e, err)
	}
	if e, err := l.Redact("#elsewhere", "m3"); e != nil || err != nil {
		t.Errorf("Redact in another target = %v, %v, want nil", e, err)
	}
	check := func(when string) {
		expectIDs(t, when+": LATEST *", query(t, l, "#room", q(rooms.SelLatest, star(), 100)), "[m1 m2 m3 m4 m6 m7 m8 m9 m10 m12]")
		expectIDs(t, when+": BEFORE m5", query(t, l, "#room", q(rooms.SelBefore, bMsg(5), 100)), "[]")
		expectIDs(t, when+": AROUND m6 3", query(t, l, "#room", q(rooms.SelAround, bMsg(6), 3)), "[m4 m6 m7]")
		expectIDs(t, when+": AFTER m10", query(t, l, "#room", q(rooms.SelAfter, bMsg(10), 100)), "[m12]")
	}
	check("before Sync")
	if err := l.Sync(); err != nil {
		t.Fatal(err)
	}
	check("after Sync")
}

// testRedactSameID: an event fanned out to several targets (a QUIT) may
// carry one msgid in each; redacting it in one keeps the others.
func testRedactSameID(t *testing.T, l rooms.Log) {
	quit := other(3, "QUIT")
	for _, target := range []string{"#a", "#b"} {
		appendAll(l, target, msg(1), msg(2), quit, msg(4))
	}
	l.Sync()
	all := rooms.Query{Sel: rooms.SelLatest, Limit: 100, Events: true}
	around := rooms.Query{Sel: rooms.SelAround, A: bMsg(3), Limit: 3, Events: true}
	expectIDs(t, "#a AROUND m3", query(t, l, "#a", around), "[m2 m3 m4]")
	if e, _ := l.Redact("#a", "m3"); !Equal(e, quit) {
		t.Fatalf("Redact #a m3 = %v", e)
	}
	expectIDs(t, "#a", query(t, l, "#a", all), "[m1 m2 m4]")
	expectIDs(t, "#b", query(t, l, "#b", all), "[m1 m2 m3 m4]")
	expectIDs(t, "#b AROUND m3", query(t, l, "#b", around), "[m2 m3 m4]")
}

func testDelete(t *testing.T, l rooms.Log) {
	appendAll(l, "#room", msgs(1, 5)...)
	appendAll(l, "#keep", msgs(1, 3)...)
	l.Sync()
	appendAll(l, "#room", msgs(6, 7)...)
	if err := l.Delete("#room"); err != nil {
		t.Fatal(err)
	}
	expectIDs(t, "deleted target", query(t, l, "#room", q(rooms.SelLatest, star(), 100)), "[]")
	expectIDs(t, "deleted target BEFORE time", query(t, l, "#room", q(rooms.SelBefore, bAt(at(100)), 100)), "[]")
	expectIDs(t, "deleted msgid", query(t, l, "#room", q(rooms.SelAround, bMsg(3), 100)), "[]")
	expectIDs(t, "other target", query(t, l, "#keep", q(rooms.SelLatest, star(), 100)), idRange(1, 3))
	checkTargets(t, l, "", "#keep")
	l.Sync()
	checkTargets(t, l, "", "#keep")
	expectIDs(t, "deleted target after Sync", query(t, l, "#room", q(rooms.SelLatest, star(), 100)), "[]")
	appendAll(l, "#room", msgs(8, 9)...)
	expectIDs(t, "appended after Delete", query(t, l, "#room", q(rooms.SelLatest, star(), 100)), idRange(8, 9))
	l.Sync()
	expectIDs(t, "appended after Delete, synced", query(t, l, "#room", q(rooms.SelLatest, star(), 100)), idRange(8, 9))
	expectIDs(t, "deleted msgid after re-append", query(t, l, "#room", q(rooms.SelAfter, bMsg(3), 100)), "[]")
}

func checkTargets(t *testing.T, l rooms.Log, prefix string, want ...string) []rooms.TargetInfo {
	t.Helper()
	ts, err := l.Targets(prefix)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, ti := range ts {
		names = append(names, ti.Name)
	}
	sort.Strings(names)
	sort.Strings(want)
	if !slices.Equal(names, want) {
		t.Errorf("Targets(%q) = %v, want %v", prefix, names, want)
	}
	return ts
}

func testTargets(t *testing.T, l rooms.Log) {
	conv := rooms.ConversationTarget("a:bob", "a:alice")
	appendAll(l, "#a", msgs(1, 3)...)
	appendAll(l, "#b", msgs(4, 4)...)
	l.Sync()
	appendAll(l, conv, msgs(5, 6)...)
	appendAll(l, "#a", msgs(7, 7)...)
	checkTargets(t, l, "", "#a", "#b", conv)
	checkTargets(t, l, "#", "#a", "#b")
	checkTargets(t, l, rooms.ConversationPrefix, conv)
	checkTargets(t, l, "~a:alice ", conv)
	checkTargets(t, l, "#c")
	want := map[string]time.Time{"#a": at(7), "#b": at(4), conv: at(6)}
	for _, synced := range []bool{false, true} {
		if synced {
			l.Sync()
		}
		for _, ti := range checkTargets(t, l, "", "#a", "#b", conv) {
			if !ti.Last.Equal(want[ti.Name]) {
				t.Errorf("Targets: %s last %v, want %v", ti.Name, ti.Last, want[ti.Name])
			}
		}
	}
	if _, err := l.Redact("#a", "m7"); err != nil {
		t.Fatal(err)
	}
	for _, ti := range checkTargets(t, l, "#a", "#a") {
		if !ti.Last.Equal(at(3)) {
			t.Errorf("after redacting the newest, #a last %v, want %v", ti.Last, at(3))
		}
	}
}

// testManyTargets interleaves appends to many targets: each keeps its own
// order, whatever the others do.
func testManyTargets(t *testing.T, l rooms.Log) {
	const targets, each = 50, 40
	name := func(k int) string { return fmt.Sprintf("#t%02d", k) }
	for i := 1; i <= each; i++ {
		for k := range targets {
			e := msg(i)
			e.Params = []string{name(k), fmt.Sprintf("%d in %d", i, k)}
			l.Append(name(k), e)
		}
		if i == each/2 {
			l.Sync()
		}
	}
	for k := range targets {
		got := query(t, l, name(k), q(rooms.SelLatest, star(), 1000))
		expectIDs(t, name(k), got, idRange(1, each))
		for _, e := range got {
			if e.Params[0] != name(k) {
				t.Fatalf("%s holds %q", name(k), e.Params)
			}
		}
		expectIDs(t, name(k)+" AROUND", query(t, l, name(k), q(rooms.SelAround, bMsg(20), 2)), idRange(19, 20))
	}
	names := make([]string, targets)
	for k := range names {
		names[k] = name(k)
	}
	checkTargets(t, l, "#t", names...)
}

// testConcurrent appends from many goroutines while others query and
// sync: each writer's events keep their order within every target.
func testConcurrent(t *testing.T, l rooms.Log) {
	const writers, each = 8, 300
	var wg sync.WaitGroup
	stop := make(chan struct{})
	var readers sync.WaitGroup
	for r := range 2 {
		readers.Add(1)
		go func() {
			defer readers.Done()
			for n := 0; ; n++ {
				select {
				case <-stop:
					return
				default:
				}
				if _, err := l.Query("#shared", q(rooms.SelLatest, star(), 50)); err != nil {
					t.Error(err)
					return
				}
				if r == 0 && n%20 == 0 {
					l.Sync()
				}
				if _, err := l.Targets("#"); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			own := fmt.Sprintf("#own%d", w)
			for i := 1; i <= each; i++ {
				e := msg(i)
				e.ID = fmt.Sprintf("w%d-%d", w, i)
				e.Params = []string{"#shared", e.ID}
				l.Append("#shared", e)
				l.Append(own, e)
			}
		}()
	}
	wg.Wait()
	close(stop)
	readers.Wait()
	check := func(when string) {
		got := query(t, l, "#shared", q(rooms.SelLatest, star(), writers*each+10))
		if len(got) != writers*each {
			t.Fatalf("%s: #shared holds %d events, want %d", when, len(got), writers*each)
		}
		next := make([]int, writers)
		for _, e := range got {
			var w, i int
			fmt.Sscanf(e.ID, "w%d-%d", &w, &i)
			if i != next[w]+1 {
				t.Fatalf("%s: writer %d's event %d follows its %d", when, w, i, next[w])
			}
			next[w] = i
		}
		for w := range writers {
			own := fmt.Sprintf("#own%d", w)
			got := query(t, l, own, q(rooms.SelLatest, star(), each+10))
			if len(got) != each || got[0].ID != fmt.Sprintf("w%d-1", w) || got[each-1].ID != fmt.Sprintf("w%d-%d", w, each) {
				t.Fatalf("%s: %s holds %d events", when, own, len(got))
			}
		}
	}
	check("before Sync")
	if err := l.Sync(); err != nil {
		t.Fatal(err)
	}
	check("after Sync")
}

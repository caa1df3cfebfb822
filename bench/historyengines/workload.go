package main

import (
	crand "crypto/rand"
	"encoding/base32"
	"encoding/binary"
	"math/rand/v2"
	"strconv"
)

// rec is one history event as a store would write it: the target's
// number, its sequence within the target, its time, its msgid and the
// encoded event (which starts with the time and carries the msgid, so a
// reader or the retention sweeper needs nothing else).
type rec struct {
	tid uint32
	seq uint64
	at  int64 // unix milliseconds
	id  []byte
	val []byte
}

// words make message text that compresses about as well as chat does
// (Pebble compresses its blocks; bbolt stores pages as they are).
var words = []string{
	"the", "a", "to", "and", "is", "it", "you", "that", "of", "in", "i", "for",
	"on", "this", "with", "but", "not", "be", "are", "have", "just", "so",
	"what", "can", "do", "was", "if", "we", "they", "like", "no", "yes", "ok",
	"lol", "think", "know", "get", "would", "about", "there", "one", "all",
	"now", "how", "at", "time", "good", "server", "room", "channel", "build",
	"test", "release", "bug", "fix", "tomorrow", "today", "thanks", "hello",
	"anyone", "here", "meeting", "deploy", "docs", "question", "answer",
	"works", "broken", "again", "maybe", "later", "morning", "night", "coffee",
	"https://example.org/some/link", "sure", "right", "really", "nice", "cool",
}

// gen makes events like a busy chat's: ~150 bytes each, spread over a
// number of targets, each target's sequence counting up, msgids made as
// rooms.IDs makes them (a random per-process prefix and a base-36
// counter, so an index keyed by msgid grows mostly at its end).
type gen struct {
	rng     *rand.Rand
	prefix  string
	n       uint64
	seqs    []uint64
	at      int64
	step    int64    // milliseconds between consecutive events
	randIDs bool     // fully random msgids (an index that grows everywhere)
	bodies  [][]byte // source, command and text, made once: making them is not what is measured
}

func newGen(targets int, start, step int64, seed uint64) *gen {
	var b [10]byte
	crand.Read(b[:])
	g := &gen{
		rng:    rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)),
		prefix: base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(b[:]),
		seqs:   make([]uint64, targets),
		at:     start,
		step:   step,
		// A server that has run a while: the counter is in its 5-digit
		// range (base 36), where new ids sort after the old ones. When the
		// width changes (36^n) new ids sort among old ones for a while;
		// -random-ids measures that worst case throughout.
		n: 36 * 36 * 36 * 36,
	}
	for range 4096 {
		i := g.rng.IntN(500)
		nick := "nick" + strconv.Itoa(i) + "!~user" + strconv.Itoa(i%37) + "@host-" + strconv.Itoa(i*7919%10007) + ".example.net"
		body := append([]byte{byte(len(nick))}, nick...)
		body = append(body, "\x07PRIVMSG"...)
		// Text up to ~150 bytes in all with the time and msgid: the size
		// of a typical chat line once the event is encoded.
		for n := 110 + g.rng.IntN(20); len(body) < n; {
			body = append(body, words[g.rng.IntN(len(words))]...)
			body = append(body, ' ')
		}
		g.bodies = append(g.bodies, body)
	}
	return g
}

// next makes the next event of target tid.
func (g *gen) next(tid uint32) rec {
	g.n++
	g.at += g.step
	g.seqs[tid]++
	var id []byte
	if g.randIDs {
		var b [13]byte
		for i := range b {
			b[i] = byte(g.rng.Uint32())
		}
		id = []byte(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(b[:])[:20])
	} else {
		id = append([]byte(g.prefix), strconv.FormatUint(g.n, 36)...)
	}
	body := g.bodies[g.rng.IntN(len(g.bodies))]
	val := make([]byte, 0, 9+len(id)+len(body))
	val = binary.BigEndian.AppendUint64(val, uint64(g.at))
	val = append(val, byte(len(id)))
	val = append(val, id...)
	val = append(val, body...)
	return rec{tid: tid, seq: g.seqs[tid], at: g.at, id: id, val: val}
}

// nextAny makes the next event of a target picked at random.
func (g *gen) nextAny() rec { return g.next(uint32(g.rng.IntN(len(g.seqs)))) }

// valTime and valID read back what next put in an encoded event.
func valTime(v []byte) int64 { return int64(binary.BigEndian.Uint64(v)) }
func valID(v []byte) []byte  { return v[9 : 9+int(v[8])] }

// result collects the encoded events a query returns, oldest first, in
// reused arenas: a store decodes them into events afterwards, which costs
// the same whatever the engine, so the engines are measured without it,
// and the allocations counted per query are the engine's own.
type result struct {
	buf, alt   []byte
	offs, alts []int
}

func (r *result) reset() { r.buf, r.offs = r.buf[:0], r.offs[:0] }

func (r *result) add(v []byte) {
	r.offs = append(r.offs, len(r.buf))
	r.buf = append(r.buf, v...)
}

func (r *result) len() int { return len(r.offs) }

func (r *result) at(i int) []byte {
	end := len(r.buf)
	if i+1 < len(r.offs) {
		end = r.offs[i+1]
	}
	return r.buf[r.offs[i]:end]
}

// reverse turns a result collected newest first into oldest first.
func (r *result) reverse() {
	r.alt, r.alts = r.alt[:0], r.alts[:0]
	for i := len(r.offs) - 1; i >= 0; i-- {
		r.alts = append(r.alts, len(r.alt))
		r.alt = append(r.alt, r.at(i)...)
	}
	r.buf, r.alt = r.alt, r.buf
	r.offs, r.alts = r.alts, r.offs
}

package protocol

import (
	"bytes"
	"errors"
	"io"
	"sync"
)

// ErrLineTooLong is returned by Reader.ReadLine for a line over the limits.
// The reader has already arranged to skip the rest of that line, so the
// connection stays usable; the daemon answers ERR_INPUTTOOLONG or disconnects
// as it sees fit.
var ErrLineTooLong = errors.New("protocol: line too long")

// errInvalidRead reports an io.Reader that broke its contract by returning a
// negative count or more than it was given room for.
var errInvalidRead = errors.New("protocol: io.Reader returned an invalid count")

const (
	// smallReadSize is the size of the array embedded in every Reader, which
	// it reads into whenever it has nothing buffered. 64 bytes hold what a
	// quiet client sends (a PONG to the server's name, a lag-check PING, a
	// short PRIVMSG) and, after the other fields, bring a Reader to 160 bytes,
	// a size class of Go's allocator; see TestReaderSize.
	smallReadSize = 64

	// poolBufSize holds any line without tags (510 + "\r\n"). It is the size
	// of the pooled buffers a Reader takes when a line does not fit in its
	// small array.
	poolBufSize = MaxBodyLen + 2

	// maxLineSize is the longest legal line: a full tag section, its space,
	// a full body and "\r\n". The buffer never grows beyond it.
	maxLineSize = MaxTagsLen + 1 + MaxBodyLen + 2

	// maxEmptyReads bounds how often an io.Reader may return (0, nil) in a
	// row before ReadLine gives up with io.ErrNoProgress instead of spinning,
	// as bufio does.
	maxEmptyReads = 100
)

// Every buffer other than the small array is at least poolBufSize bytes, which
// is how Reader.inSmall tells them apart.
var _ [poolBufSize - smallReadSize - 1]struct{}

// bufPool holds poolBufSize buffers that Readers gave back when they went to
// wait for input with nothing buffered. Only that size is pooled: a buffer
// grown for a long tagged line is left to the garbage collector, so the pool
// never hoards big ones. Like any sync.Pool it is a cache emptied by garbage
// collection, not memory that idle Readers keep. It is the only state Readers
// share, and is safe for concurrent use.
var bufPool = sync.Pool{New: func() any { return new([poolBufSize]byte) }}

// Reader reads IRC lines while enforcing the protocol's length limits, so a
// client can never make the daemon buffer more than one legal line.
//
// Lines end in "\n" or "\r\n". A line starting with '@' may have a tag section
// of up to MaxTagsLen bytes followed by a space and a body of up to MaxBodyLen
// bytes; any other line may have up to MaxBodyLen bytes. A longer line yields
// ErrLineTooLong once, as soon as it is known to be too long; its remaining
// bytes are discarded up to and including the next "\n", and the next
// ReadLine returns the line after it. Binary junk without newlines therefore
// costs one ErrLineTooLong and bounded memory, never a spin or a growing
// buffer.
//
// # Memory
//
// Most connections are idle most of the time, each with a goroutine parked in
// the io.Reader's Read, so what a Reader holds while it waits is what the
// daemon pays per idle connection: with a 512-byte buffer kept for good,
// 10,000 idle connections would pin 5 MB of buffers holding nothing. So a
// Reader that has no bytes buffered and no line in progress when it must
// read gives its buffer back to a package-level sync.Pool and reads into a
// small array inside the Reader itself (smallReadSize bytes); an idle Reader
// is 160 bytes in all. The lines a quiet connection sends, PONGs and the
// like, arrive one per Read and fit there, so they are returned straight from
// that array, with no copy and no pool traffic. Only a line still incomplete
// after what the small array holds makes the Reader take a poolBufSize buffer
// from the pool, copy those bytes in and read on into it. That buffer grows,
// up to maxLineSize, only while a tagged line needs it; a grown buffer is
// dropped once its line has been consumed, never pooled, so the pool never
// hoards big ones.
//
// The price is paid by a line longer than the small array that arrives when
// nothing is buffered: one more Read (on a socket, one more system call) and
// a copy of smallReadSize bytes. A line that is cut short by an error, such as
// a read deadline, keeps its bytes where they are, in the small array if they
// arrived there; reading on moves them to a pooled buffer, which the Reader
// keeps until the line is complete. The rest of an over-long line is
// discarded through a pooled buffer too.
//
// A Reader is not safe for concurrent use; each connection has its own,
// driven by one goroutine. The pool is the only state Readers share.
type Reader struct {
	rd io.Reader

	// buf holds the buffered data in buf[r:w]. It is nil before the first
	// read, r.small[:] while the Reader waits with nothing buffered (and until
	// a line read there needs more room), and otherwise a buffer from bufPool
	// or, for a long tagged line, a bigger one.
	buf []byte
	r   int // start of unconsumed data in buf
	w   int // end of data in buf

	// scanned is how many bytes of buf[r:w] have already been searched for
	// '\n' (and for the space ending a tag section), so that a line arriving
	// one byte per Read is not rescanned from its start each time.
	scanned int
	// tagEnd is the offset from r of the first space of a line starting with
	// '@', or -1 when none has been seen in the scanned part.
	tagEnd int

	err     error // error from rd, reported once the data read before it is used
	discard bool  // skipping the rest of a line already reported too long

	// small is what the Reader reads into when it has nothing buffered.
	// Placed last, after discard, it packs the Reader into 160 bytes.
	small [smallReadSize]byte
}

// NewReader returns a Reader reading from rd. It allocates no buffer: reads
// start in the Reader's own small array (see Reader).
func NewReader(rd io.Reader) *Reader {
	return &Reader{rd: rd, tagEnd: -1}
}

// ReadLine returns the next line without its "\n" or "\r\n". An empty line is
// returned as an empty slice; deciding to ignore it is the caller's job. The
// returned slice aliases the Reader's buffer and is only valid until the next
// call, after which its memory may be reused, by another Reader too (the
// buffers are pooled): a caller that keeps any of it must copy it, as Parse
// does.
//
// At the end of input ReadLine returns io.EOF. A final line without a
// terminator is not returned: it is reported once as io.ErrUnexpectedEOF
// (then io.EOF), since a connection that closes mid-line carries half a
// command that must not run. A line over the limits yields
// ErrLineTooLong (see Reader). Other errors come from the underlying
// io.Reader, or are io.ErrNoProgress when it keeps returning no data and no
// error.
//
// Like bufio, ReadLine reports each error from the io.Reader once and reads
// again on the next call, keeping a partly received line. That is what lets
// the daemon use read deadlines on a net.Conn for idle checks: after
// os.ErrDeadlineExceeded it can extend the deadline and carry on reading
// without losing or corrupting the line in progress.
func (r *Reader) ReadLine() ([]byte, error) {
	r.shrink()
	for {
		if r.discard {
			if i := bytes.IndexByte(r.buf[r.r:r.w], '\n'); i >= 0 {
				r.r += i + 1
				r.discard = false
				continue
			}
			r.r, r.w = 0, 0
			if r.err != nil {
				return nil, r.takeErr()
			}
			r.fill()
			continue
		}

		win := r.buf[r.r:r.w]
		if i := bytes.IndexByte(win[r.scanned:], '\n'); i >= 0 {
			line := win[:r.scanned+i]
			r.r += len(line) + 1
			return r.finish(line)
		}
		r.scanTagEnd(win)
		r.scanned = len(win)
		// Decide as early as possible: once no continuation could make this
		// line legal, report it and discard the rest without buffering it.
		if !r.fits(trimCR(win)) {
			r.resetLine()
			r.r, r.w = 0, 0
			r.discard = true
			return nil, ErrLineTooLong
		}
		if r.err != nil {
			if r.err == io.EOF && len(win) > 0 {
				// The final unterminated line is dropped: a client cut
				// off mid-command must not have half of it run.
				// io.EOF stays recorded for the next call.
				r.resetLine()
				r.r = r.w
				return nil, io.ErrUnexpectedEOF
			}
			return nil, r.takeErr()
		}
		r.fill()
	}
}

func (r *Reader) takeErr() error {
	err := r.err
	r.err = nil
	return err
}

// finish checks a complete line (without its "\n", already consumed from the
// buffer) against the limits and resets the per-line scan state.
func (r *Reader) finish(line []byte) ([]byte, error) {
	r.scanTagEnd(line)
	line = trimCR(line)
	ok := r.fits(line)
	r.resetLine()
	if !ok {
		return nil, ErrLineTooLong
	}
	return line, nil
}

func (r *Reader) resetLine() {
	r.scanned = 0
	r.tagEnd = -1
}

// scanTagEnd looks for the space that ends the tag section of a tagged line in
// the part of line not yet scanned. Looking past MaxTagsLen is pointless: the
// line is too long whatever follows.
func (r *Reader) scanTagEnd(line []byte) {
	if len(line) == 0 || line[0] != '@' || r.tagEnd >= 0 {
		return
	}
	end := min(len(line), MaxTagsLen+1)
	if r.scanned >= end {
		return
	}
	if i := bytes.IndexByte(line[r.scanned:end], ' '); i >= 0 {
		r.tagEnd = r.scanned + i
	}
}

// fits reports whether line, stripped of its terminator, is within the limits,
// given r.tagEnd for it. Because every prefix of a legal line is legal, it
// also decides whether a partial line could still become legal.
func (r *Reader) fits(line []byte) bool {
	if len(line) == 0 || line[0] != '@' {
		return len(line) <= MaxBodyLen
	}
	if r.tagEnd < 0 || r.tagEnd >= len(line) {
		return len(line) <= MaxTagsLen
	}
	return r.tagEnd <= MaxTagsLen && len(line)-r.tagEnd-1 <= MaxBodyLen
}

func trimCR(b []byte) []byte {
	if n := len(b); n > 0 && b[n-1] == '\r' {
		return b[:n-1]
	}
	return b
}

// fill reads more data into the buffer, making room first. It records any
// error in r.err rather than returning it, because data read together with an
// error must be consumed before the error is reported.
//
// fill is only called from ReadLine, so the line the previous call returned
// is no longer in use and every buffer can be given back or overwritten.
func (r *Reader) fill() {
	if r.r == r.w {
		r.r, r.w = 0, 0
	}
	if r.w == 0 && !r.discard {
		// Nothing buffered and no line in progress: this Read is where a
		// quiet connection waits, so wait in the small array and give the
		// buffer back.
		if !r.inSmall() {
			r.releaseBuf()
			r.buf = r.small[:]
		}
	} else if r.inSmall() || r.buf == nil || r.w == len(r.buf) {
		r.makeRoom()
	}
	for range maxEmptyReads {
		n, err := r.rd.Read(r.buf[r.w:])
		if n < 0 || n > len(r.buf)-r.w {
			r.err = errInvalidRead
			return
		}
		r.w += n
		if err != nil {
			r.err = err
			return
		}
		if n > 0 {
			return
		}
	}
	r.err = io.ErrNoProgress
}

// makeRoom moves a line in progress (or being discarded) out of the small
// array into a pooled buffer, or makes room at the end of a full buffer.
func (r *Reader) makeRoom() {
	switch {
	case r.inSmall() || r.buf == nil:
		nb := bufPool.Get().(*[poolBufSize]byte)[:]
		r.w = copy(nb, r.buf[r.r:r.w])
		r.r = 0
		r.buf = nb
	case r.r > 0:
		r.w = copy(r.buf, r.buf[r.r:r.w])
		r.r = 0
	default:
		// ReadLine only gets here for a line that may still be legal, and a
		// legal line always fits in maxLineSize.
		nb := make([]byte, min(2*len(r.buf), maxLineSize))
		copy(nb, r.buf[:r.w])
		r.releaseBuf()
		r.buf = nb
	}
}

// inSmall reports whether the buffer is the Reader's small array.
func (r *Reader) inSmall() bool {
	return len(r.buf) == smallReadSize
}

// releaseBuf drops the buffer, putting it back in the pool if it came from
// there. The caller must not need its contents any more.
func (r *Reader) releaseBuf() {
	if len(r.buf) == poolBufSize {
		bufPool.Put((*[poolBufSize]byte)(r.buf))
	}
	r.buf = nil
}

// shrink drops a buffer grown for a long tagged line once that line has been
// consumed, moving what follows it to a pooled buffer. It runs at the start
// of ReadLine because until then the caller may still be using the previous
// line, which lives in the buffer.
func (r *Reader) shrink() {
	if len(r.buf) <= poolBufSize || r.w-r.r > poolBufSize {
		return
	}
	rest := r.buf[r.r:r.w]
	r.buf = nil // grown buffers are not pooled
	r.r, r.w = 0, 0
	if len(rest) > 0 {
		// Otherwise fill picks the small array or a pooled buffer when it
		// needs one.
		r.buf = bufPool.Get().(*[poolBufSize]byte)[:]
		r.w = copy(r.buf, rest)
	}
}

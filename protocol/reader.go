package protocol

import (
	"bytes"
	"errors"
	"io"
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
	// smallBufSize holds any line without tags (510 + "\r\n"). Idle
	// connections keep only this much.
	smallBufSize = MaxBodyLen + 2

	// maxLineSize is the longest legal line: a full tag section, its space,
	// a full body and "\r\n". The buffer never grows beyond it.
	maxLineSize = MaxTagsLen + 1 + MaxBodyLen + 2

	// maxEmptyReads bounds how often an io.Reader may return (0, nil) in a
	// row before ReadLine gives up with io.ErrNoProgress instead of spinning,
	// as bufio does.
	maxEmptyReads = 100
)

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
// The buffer is allocated on the first read at smallBufSize bytes, grows only
// while a tagged line needs it, and shrinks back once the big line has been
// consumed, which keeps idle connections cheap.
//
// A Reader is not safe for concurrent use; each connection has its own,
// driven by one goroutine.
type Reader struct {
	rd  io.Reader
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

	discard bool  // skipping the rest of a line already reported too long
	err     error // error from rd, reported once the data read before it is used
}

// NewReader returns a Reader reading from rd. It allocates no buffer until
// the first ReadLine.
func NewReader(rd io.Reader) *Reader {
	return &Reader{rd: rd, tagEnd: -1}
}

// ReadLine returns the next line without its "\n" or "\r\n". An empty line is
// returned as an empty slice; deciding to ignore it is the caller's job. The
// returned slice aliases the Reader's buffer and is only valid until the next
// call.
//
// At the end of input ReadLine returns io.EOF; a final line without a
// terminator is returned first, once. A line over the limits yields
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
				// The final unterminated line; io.EOF stays recorded for
				// the next call.
				r.r = r.w
				return r.finish(win)
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
func (r *Reader) fill() {
	if r.buf == nil {
		r.buf = make([]byte, smallBufSize)
	}
	if r.r == r.w {
		r.r, r.w = 0, 0
	}
	if r.w == len(r.buf) {
		if r.r > 0 {
			r.w = copy(r.buf, r.buf[r.r:r.w])
			r.r = 0
		} else {
			// ReadLine only gets here for a line that may still be legal, and
			// a legal line always fits in maxLineSize.
			nb := make([]byte, min(2*len(r.buf), maxLineSize))
			copy(nb, r.buf[:r.w])
			r.buf = nb
		}
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

// shrink returns to a small buffer once the big line that needed a large one
// has been consumed. It runs at the start of ReadLine because until then the
// caller may still be using the previous line, which lives in the buffer.
func (r *Reader) shrink() {
	if len(r.buf) <= smallBufSize || r.w-r.r > smallBufSize {
		return
	}
	if r.r == r.w {
		// Nothing to carry over; fill allocates a small buffer when it
		// needs one.
		r.buf = nil
		r.r, r.w = 0, 0
		return
	}
	nb := make([]byte, smallBufSize)
	r.w = copy(nb, r.buf[r.r:r.w])
	r.r = 0
	r.buf = nb
}

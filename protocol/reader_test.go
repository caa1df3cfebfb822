package protocol

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"testing"
	"testing/iotest"
	"unsafe"
)

// result is one ReadLine outcome.
type result struct {
	line string
	err  error
}

func (r result) String() string { return fmt.Sprintf("{%q %v}", r.line, r.err) }

// readAll calls ReadLine until it returns an error other than
// ErrLineTooLong, at most maxCalls times, so a reader that spins fails the
// test instead of hanging it.
func readAll(t *testing.T, r *Reader, maxCalls int) []result {
	t.Helper()
	var out []result
	for range maxCalls {
		line, err := r.ReadLine()
		if err != nil && line != nil {
			t.Errorf("ReadLine returned a line %q together with error %v", line, err)
		}
		out = append(out, result{string(line), err})
		if err != nil && !errors.Is(err, ErrLineTooLong) && !errors.Is(err, io.ErrUnexpectedEOF) {
			return out
		}
	}
	t.Fatalf("no terminal error after %d calls: %v", maxCalls, summarize(out))
	return nil
}

// summarize shortens long lines so failures stay readable.
func summarize(rs []result) []result {
	out := make([]result, len(rs))
	for i, r := range rs {
		if len(r.line) > 40 {
			r.line = r.line[:20] + "..." + r.line[len(r.line)-20:]
		}
		out[i] = r
	}
	return out
}

func equalResults(a, b []result) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].line != b[i].line || !errors.Is(a[i].err, b[i].err) {
			return false
		}
	}
	return true
}

// wrappers deliver the same input in different chunkings, which must not
// change what ReadLine returns.
var wrappers = []struct {
	name string
	wrap func(io.Reader) io.Reader
}{
	{"whole", func(r io.Reader) io.Reader { return r }},
	{"OneByteReader", iotest.OneByteReader},
	{"HalfReader", iotest.HalfReader},
	{"DataErrReader", iotest.DataErrReader},
}

func TestReadLine(t *testing.T) {
	body510 := "PRIVMSG #a :" + strings.Repeat("x", MaxBodyLen-len("PRIVMSG #a :"))
	body511 := body510 + "y"
	tags8191 := "@k=" + strings.Repeat("v", MaxTagsLen-3)
	tags8192 := tags8191 + "w"

	tests := []struct {
		name  string
		input string
		want  []result
	}{
		{
			name:  "lf and crlf",
			input: "NICK bob\nUSER bob 0 * :Bob\r\nPING x\n",
			want:  []result{{"NICK bob", nil}, {"USER bob 0 * :Bob", nil}, {"PING x", nil}, {"", io.EOF}},
		},
		{
			name:  "empty lines returned as empty",
			input: "\n\r\nPING\n",
			want:  []result{{"", nil}, {"", nil}, {"PING", nil}, {"", io.EOF}},
		},
		{
			name:  "no input",
			input: "",
			want:  []result{{"", io.EOF}},
		},
		{
			name:  "final unterminated line is dropped",
			input: "PING a\nPING b",
			want:  []result{{"PING a", nil}, {"", io.ErrUnexpectedEOF}, {"", io.EOF}},
		},
		{
			name:  "final unterminated line with cr is dropped",
			input: "PING b\r",
			want:  []result{{"", io.ErrUnexpectedEOF}, {"", io.EOF}},
		},
		{
			name:  "cr kept inside line",
			input: "a\rb\r\n",
			want:  []result{{"a\rb", nil}, {"", io.EOF}},
		},
		{
			name:  "body at limit",
			input: body510 + "\r\n" + body510 + "\n",
			want:  []result{{body510, nil}, {body510, nil}, {"", io.EOF}},
		},
		{
			name:  "body over limit then intact line",
			input: body511 + "\r\nPING after\r\n",
			want:  []result{{"", ErrLineTooLong}, {"PING after", nil}, {"", io.EOF}},
		},
		{
			name:  "body over limit without cr",
			input: body511 + "\nPING after\n",
			want:  []result{{"", ErrLineTooLong}, {"PING after", nil}, {"", io.EOF}},
		},
		{
			name:  "body far over limit",
			input: strings.Repeat("z", 5000) + "\nPING after\n",
			want:  []result{{"", ErrLineTooLong}, {"PING after", nil}, {"", io.EOF}},
		},
		{
			name:  "two over-long lines in a row",
			input: body511 + "\n" + body511 + "\nPING after\n",
			want:  []result{{"", ErrLineTooLong}, {"", ErrLineTooLong}, {"PING after", nil}, {"", io.EOF}},
		},
		{
			name:  "over-long final line at eof",
			input: "PING a\n" + body511,
			want:  []result{{"PING a", nil}, {"", ErrLineTooLong}, {"", io.EOF}},
		},
		{
			name:  "over-long unterminated junk at eof",
			input: strings.Repeat("j", 100000),
			want:  []result{{"", ErrLineTooLong}, {"", io.EOF}},
		},
		{
			name:  "tags and body at limit",
			input: tags8191 + " " + body510 + "\r\nPING after\n",
			want:  []result{{tags8191 + " " + body510, nil}, {"PING after", nil}, {"", io.EOF}},
		},
		{
			name:  "tags at limit with extra spaces counted in body",
			input: tags8191 + "  " + body510 + "\nPING after\n",
			want:  []result{{"", ErrLineTooLong}, {"PING after", nil}, {"", io.EOF}},
		},
		{
			name:  "tag-only line at limit",
			input: tags8191 + "\r\nPING after\n",
			want:  []result{{tags8191, nil}, {"PING after", nil}, {"", io.EOF}},
		},
		{
			name:  "tags over limit",
			input: tags8192 + " PING x\r\nPING after\n",
			want:  []result{{"", ErrLineTooLong}, {"PING after", nil}, {"", io.EOF}},
		},
		{
			name:  "tag-only line over limit",
			input: tags8192 + "\nPING after\n",
			want:  []result{{"", ErrLineTooLong}, {"PING after", nil}, {"", io.EOF}},
		},
		{
			name:  "tags fine but body over limit",
			input: "@a=b " + body511 + "\nPING after\n",
			want:  []result{{"", ErrLineTooLong}, {"PING after", nil}, {"", io.EOF}},
		},
		{
			name:  "short tagged line",
			input: "@a=b PRIVMSG #a :hi\r\n",
			want:  []result{{"@a=b PRIVMSG #a :hi", nil}, {"", io.EOF}},
		},
		{
			name:  "untagged line may not use the tag allowance",
			input: "PRIVMSG #a :@" + strings.Repeat("x", 600) + "\nPING after\n",
			want:  []result{{"", ErrLineTooLong}, {"PING after", nil}, {"", io.EOF}},
		},
	}
	for _, tt := range tests {
		for _, w := range wrappers {
			t.Run(tt.name+"/"+w.name, func(t *testing.T) {
				r := NewReader(w.wrap(strings.NewReader(tt.input)))
				got := readAll(t, r, len(tt.want)+5)
				if !equalResults(got, tt.want) {
					t.Errorf("got  %v\nwant %v", summarize(got), summarize(tt.want))
				}
				// At the end, it stays at the end.
				if _, err := r.ReadLine(); err != io.EOF {
					t.Errorf("ReadLine after EOF: %v, want io.EOF", err)
				}
			})
		}
	}
}

// TestReadLineBinaryBlob feeds a mebibyte of binary junk without a newline.
// The reader must report it, discard it in bounded memory and resynchronise
// after the newline that ends it, within a bounded number of calls. Bytes
// between the junk and that newline belong to the junk's line: a reader has
// no other way to find where a line starts.
func TestReadLineBinaryBlob(t *testing.T) {
	blob := make([]byte, 1<<20)
	for i := range blob {
		blob[i] = byte(i*7 + 13)
		if blob[i] == '\n' {
			blob[i] = 0
		}
	}
	tests := []struct {
		name  string
		after string
		want  []result
	}{
		{
			name:  "newline then line",
			after: "\nPING x\n",
			want:  []result{{"", ErrLineTooLong}, {"PING x", nil}, {"", io.EOF}},
		},
		{
			name:  "line glued to the junk is discarded with it",
			after: "PING x\nPING y\n",
			want:  []result{{"", ErrLineTooLong}, {"PING y", nil}, {"", io.EOF}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := &recordingReader{r: io.MultiReader(bytes.NewReader(blob), strings.NewReader(tt.after))}
			r := NewReader(rec)
			got := readAll(t, r, 10)
			if !equalResults(got, tt.want) {
				t.Fatalf("got %v, want %v", summarize(got), summarize(tt.want))
			}
			if rec.maxLen > poolBufSize {
				t.Errorf("buffer grew to %d bytes for an untagged line, want %d", rec.maxLen, poolBufSize)
			}
		})
	}
}

// recordingReader records the largest buffer it was asked to fill.
type recordingReader struct {
	r      io.Reader
	maxLen int
}

func (r *recordingReader) Read(p []byte) (int, error) {
	r.maxLen = max(r.maxLen, len(p))
	return r.r.Read(p)
}

// TestReadLineTaggedBlob is the same for junk that starts with '@' and has a
// space early, the case allowed the most buffering.
func TestReadLineTaggedBlob(t *testing.T) {
	input := "@a " + strings.Repeat("b", 1<<20) + "\nPING x\n"
	for _, w := range wrappers {
		t.Run(w.name, func(t *testing.T) {
			rec := &recordingReader{r: w.wrap(strings.NewReader(input))}
			r := NewReader(rec)
			got := readAll(t, r, 10)
			want := []result{{"", ErrLineTooLong}, {"PING x", nil}, {"", io.EOF}}
			if !equalResults(got, want) {
				t.Fatalf("got %v, want %v", summarize(got), summarize(want))
			}
			if rec.maxLen > maxLineSize {
				t.Errorf("buffer grew to %d bytes, limit %d", rec.maxLen, maxLineSize)
			}
		})
	}
}

func TestReaderBufferSize(t *testing.T) {
	big := "@k=" + strings.Repeat("v", 4000) + " PRIVMSG #a :hi\n"
	input := "PING a\n" + big + "PING b\nPING c\n"
	r := NewReader(strings.NewReader(input))
	if r.buf != nil {
		t.Fatalf("NewReader allocated a buffer of %d bytes before any read", len(r.buf))
	}

	steps := []struct {
		want    string
		bufSize int
	}{
		{"PING a", smallReadSize}, // read into the small array
		{big[:len(big)-1], 4096},  // grown for the tagged line
		{"PING b", poolBufSize},   // back to a pooled one once it is consumed
		{"PING c", poolBufSize},
	}
	for _, s := range steps {
		line, err := r.ReadLine()
		if err != nil || string(line) != s.want {
			t.Fatalf("ReadLine = %.30q, %v; want %.30q", line, err, s.want)
		}
		if len(r.buf) != s.bufSize {
			t.Errorf("after %.10q: buffer is %d bytes, want %d", s.want, len(r.buf), s.bufSize)
		}
	}
	if _, err := r.ReadLine(); err != io.EOF {
		t.Fatalf("ReadLine at the end: %v, want io.EOF", err)
	}
	if !r.inSmall() {
		t.Errorf("at the end: buffer is %d bytes, want the small array", len(r.buf))
	}
}

func TestReaderNoProgress(t *testing.T) {
	r := NewReader(iotest.ErrReader(nil)) // returns 0, nil forever
	got := readAll(t, r, 3)
	want := []result{{"", io.ErrNoProgress}}
	if !equalResults(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
}

func TestReaderErrorAfterData(t *testing.T) {
	errBoom := errors.New("boom")
	input := io.MultiReader(strings.NewReader("PING a\nPING b\npartial"), iotest.ErrReader(errBoom))
	r := NewReader(input)
	got := readAll(t, r, 10)
	// Complete lines read before the error come first.
	want := []result{{"PING a", nil}, {"PING b", nil}, {"", errBoom}}
	if !equalResults(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
}

// step is one scripted Read result.
type step struct {
	data string
	err  error
}

// scriptReader plays back steps, then returns io.EOF.
type scriptReader struct{ steps []step }

func (s *scriptReader) Read(p []byte) (int, error) {
	if len(s.steps) == 0 {
		return 0, io.EOF
	}
	st := &s.steps[0]
	n := copy(p, st.data)
	st.data = st.data[n:]
	if st.data != "" {
		return n, nil
	}
	err := st.err
	s.steps = s.steps[1:]
	return n, err
}

// TestReaderResumesAfterTimeout is the daemon's idle check: a read deadline
// fires in the middle of a line, and reading resumes after it with the line
// intact and the error reported exactly once.
func TestReaderResumesAfterTimeout(t *testing.T) {
	timeout := os.ErrDeadlineExceeded
	long := "@k " + strings.Repeat("x", MaxBodyLen+1)
	r := NewReader(&scriptReader{steps: []step{
		{"PING a\nPART", timeout},
		{"", timeout},
		{" #x :bye\r\n" + long[:300], timeout},
		{long[300:] + "\nPING b\n", nil},
	}})
	var got []result
	for range 8 {
		line, err := r.ReadLine()
		got = append(got, result{string(line), err})
	}
	want := []result{
		{"PING a", nil}, {"", timeout},
		{"", timeout},
		{"PART #x :bye", nil}, {"", timeout},
		{"", ErrLineTooLong}, {"PING b", nil}, {"", io.EOF},
	}
	if !equalResults(got, want) {
		t.Fatalf("got  %v\nwant %v", got, want)
	}
}

// badReader claims to have read more than it was given room for.
type badReader struct{}

func (badReader) Read(p []byte) (int, error) { return len(p) + 1, nil }

func TestReaderInvalidCount(t *testing.T) {
	r := NewReader(badReader{})
	if _, err := r.ReadLine(); err == nil || errors.Is(err, io.EOF) {
		t.Fatalf("ReadLine from a misbehaving io.Reader: %v, want an error", err)
	}
}

// repeatReader serves the same chunk forever.
type repeatReader struct {
	chunk []byte
	off   int
}

func (r *repeatReader) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		c := copy(p[n:], r.chunk[r.off:])
		n += c
		r.off = (r.off + c) % len(r.chunk)
	}
	return n, nil
}

func TestReadLineAllocs(t *testing.T) {
	if testing.CoverMode() != "" || raceEnabled {
		t.Skip("allocation counts are not meaningful under -cover or -race")
	}
	r := NewReader(&repeatReader{chunk: []byte("PRIVMSG #room :hello there everyone\r\n")})
	if _, err := r.ReadLine(); err != nil { // first call allocates the buffer
		t.Fatal(err)
	}
	if got := testing.AllocsPerRun(1000, func() { _, _ = r.ReadLine() }); got != 0 {
		t.Errorf("ReadLine in steady state: %v allocs, want 0", got)
	}
}

func TestReaderSize(t *testing.T) {
	if unsafe.Sizeof(uintptr(0)) != 8 {
		t.Skip("the size is worked out for 64-bit platforms")
	}
	// What an idle connection's Reader holds is this and no buffer; see
	// smallReadSize before growing it past a size class of the allocator.
	if got := unsafe.Sizeof(Reader{}); got > 160 {
		t.Errorf("Reader is %d bytes, want at most 160", got)
	}
}

// holdsNoBuffer fails the test unless r has nothing buffered and reads into
// its small array, holding neither a pooled nor a grown buffer.
func holdsNoBuffer(t *testing.T, r *Reader, after string) {
	t.Helper()
	if r.w != r.r {
		t.Errorf("after %.20q: %d bytes still buffered", after, r.w-r.r)
	}
	if !r.inSmall() {
		t.Errorf("after %.20q: holds a %d-byte buffer, want only the small array", after, len(r.buf))
	}
}

// idleLines are what a connection might send before going quiet: lines that
// fit in the small array, lines that need a pooled buffer or a grown one,
// and one over the limits.
var idleLines = []string{
	"PONG :irc.livechat.example\r\n",
	benchTagless + "\r\n",
	benchTagged + "\r\n",
	"PRIVMSG #a :" + strings.Repeat("x", 300) + "\n",
	"@k=" + strings.Repeat("v", 4000) + " PRIVMSG #a :hi\r\n",
	"PING\n",
	strings.Repeat("j", 2000) + "\n", // too long
	"\r\n",
}

func wantLine(line string) result {
	line = strings.TrimSuffix(strings.TrimSuffix(line, "\n"), "\r")
	if !modelFits([]byte(line)) {
		return result{err: ErrLineTooLong}
	}
	return result{line: line}
}

// chanReader is a quiet socket: each Read with nothing left to serve waits
// for the next chunk on chunks, and first sends on waiting what the Reader
// looks like as it waits. That runs on the Reader's own goroutine, inside
// its ReadLine, so looking at its fields is no race.
type chanReader struct {
	r       *Reader
	chunks  chan string
	waiting chan readerState
	pending string
}

type readerState struct {
	room     int  // len(p)
	pIsSmall bool // p is the start of the Reader's small array
	buffered int  // bytes already buffered
	inSmall  bool // the Reader's buffer is its small array
}

func (c *chanReader) Read(p []byte) (int, error) {
	if c.pending == "" {
		c.waiting <- readerState{
			room:     len(p),
			pIsSmall: len(p) > 0 && &p[0] == &c.r.small[0],
			buffered: c.r.w - c.r.r,
			inSmall:  c.r.inSmall(),
		}
		chunk, ok := <-c.chunks
		if !ok {
			return 0, io.EOF
		}
		c.pending = chunk
	}
	n := copy(p, c.pending)
	c.pending = c.pending[n:]
	return n, nil
}

// TestReaderIdleHoldsNoBuffer checks the point of the small array: whatever
// the last line was, a Reader that has returned it and is blocked in Read
// for the next one holds no buffer.
func TestReaderIdleHoldsNoBuffer(t *testing.T) {
	src := &chanReader{chunks: make(chan string), waiting: make(chan readerState)}
	r := NewReader(src)
	src.r = r
	results := make(chan result)
	go func() {
		for {
			line, err := r.ReadLine()
			results <- result{string(line), err}
			if err == io.EOF {
				return
			}
		}
	}()

	after := "nothing"
	for _, line := range idleLines {
		st := <-src.waiting
		want := readerState{room: smallReadSize, pIsSmall: true, buffered: 0, inSmall: true}
		if st != want {
			t.Errorf("waiting after %.20q: %+v, want %+v", after, st, want)
		}
		src.chunks <- line
		if got, want := <-results, wantLine(line); !equalResults([]result{got}, []result{want}) {
			t.Errorf("got %v, want %v", summarize([]result{got}), summarize([]result{want}))
		}
		after = line
	}
	<-src.waiting
	close(src.chunks)
	if got := <-results; got.err != io.EOF {
		t.Errorf("at the end: %v, want io.EOF", got)
	}
}

// TestReaderIdleAfterDeadline is the same with the daemon's idle check: each
// line is followed by a read deadline, after which the Reader must have
// given its buffer back.
func TestReaderIdleAfterDeadline(t *testing.T) {
	timeout := os.ErrDeadlineExceeded
	var steps []step
	for _, line := range idleLines {
		steps = append(steps, step{line, nil}, step{"", timeout})
	}
	r := NewReader(&scriptReader{steps: steps})
	for _, line := range idleLines {
		got, err := r.ReadLine()
		if want := wantLine(line); !equalResults([]result{{string(got), err}}, []result{want}) {
			t.Fatalf("got %.20q, %v; want %v", got, err, want)
		}
		if _, err := r.ReadLine(); err != timeout {
			t.Fatalf("after %.20q: %v, want %v", line, err, timeout)
		}
		holdsNoBuffer(t, r, line)
	}
}

// splitLines have lengths around the small array's and beyond, with either
// terminator, and a final unterminated one.
func splitLines() string {
	var b strings.Builder
	for _, n := range []int{0, 1, 30, 62, 63, 64, 65, 66, 100, 127, 128, 129, 300, 509, 510, 511, 1000} {
		line := "PRIVMSG #a :" + strings.Repeat("x", max(0, n-12))
		line = line[:n]
		b.WriteString(line + "\n" + line + "\r\n")
	}
	b.WriteString("@k=" + strings.Repeat("v", 2000) + " PRIVMSG #a :" + strings.Repeat("y", 490) + "\r\n")
	b.WriteString("PING :end")
	return b.String()
}

// TestReaderChunkings reads lines shorter and longer than the small array,
// delivered in reads of every size from 1 to 100 bytes, so that lines start
// in the small array and are completed by later reads at every offset.
func TestReaderChunkings(t *testing.T) {
	input := splitLines()
	want := append(modelReadLines([]byte(input)), result{err: io.EOF})
	readers := map[string]func() io.Reader{
		"OneByteReader": func() io.Reader { return iotest.OneByteReader(strings.NewReader(input)) },
	}
	for chunk := 1; chunk <= 100; chunk++ {
		readers[fmt.Sprintf("chunk%d", chunk)] = func() io.Reader {
			return &chunkReader{data: []byte(input), chunk: chunk}
		}
	}
	for name, newSrc := range readers {
		t.Run(name, func(t *testing.T) {
			got := readAll(t, NewReader(newSrc()), len(want)+5)
			if !equalResults(got, want) {
				t.Errorf("got  %v\nwant %v", summarize(got), summarize(want))
			}
		})
	}
}

// legalLine returns a legal line of n bytes, tagged if n > MaxBodyLen.
func legalLine(n int) string {
	body := "PRIVMSG #a :" + strings.Repeat("z", MaxBodyLen)
	if n <= MaxBodyLen {
		return body[:n]
	}
	return "@t=" + strings.Repeat("t", n-MaxBodyLen-4) + " " + body[:MaxBodyLen]
}

// TestReaderSplitLine delivers a line in two reads, split at every offset,
// optionally with a read deadline between them and after a line that was
// returned from the small array. The bytes that came before the deadline
// stay where they arrived (the small array when they fit) while the deadline
// is reported, and the line comes out whole once the rest arrives.
func TestReaderSplitLine(t *testing.T) {
	timeout := os.ErrDeadlineExceeded
	for _, n := range []int{10, 63, 64, 65, 100, 510, 2000} {
		line := legalLine(n)
		if len(line) != n || !modelFits([]byte(line)) {
			t.Fatalf("legalLine(%d) is %d bytes, fits=%v", n, len(line), modelFits([]byte(line)))
		}
		full := line + "\r\n"
		for _, prefix := range []string{"", "PONG :a\r\n"} {
			for _, withTimeout := range []bool{false, true} {
				for k := 1; k < len(full); k++ {
					var firstErr error
					if withTimeout {
						firstErr = timeout
					}
					r := NewReader(&scriptReader{steps: []step{
						{prefix + full[:k], firstErr},
						{full[k:], nil},
						{"PING x\n", nil},
					}})
					var want []result
					if prefix != "" {
						want = append(want, result{line: "PONG :a"})
					}
					if withTimeout {
						want = append(want, result{err: timeout})
					}
					want = append(want, result{line: line}, result{line: "PING x"}, result{err: io.EOF})

					var got []result
					for range want {
						l, err := r.ReadLine()
						got = append(got, result{string(l), err})
						if err == timeout && len(prefix)+k <= smallReadSize {
							// The part of the line read so far is still in
							// the small array, where it arrived.
							if !r.inSmall() || string(r.buf[r.r:r.w]) != full[:k] {
								t.Errorf("n=%d prefix=%q k=%d: at the deadline, small=%v buffered %q, want %q in the small array",
									n, prefix, k, r.inSmall(), r.buf[r.r:r.w], full[:k])
							}
						}
					}
					if !equalResults(got, want) {
						t.Fatalf("n=%d prefix=%q timeout=%v k=%d:\ngot  %v\nwant %v",
							n, prefix, withTimeout, k, summarize(got), summarize(want))
					}
					holdsNoBuffer(t, r, "the end")
				}
			}
		}
	}
}

// TestReaderTimeoutInSmallArray is the daemon's idle check firing in the
// middle of a line that arrived in the small array: the deadline is reported
// with the partial line kept there, again on the next call, and the line is
// reassembled when the rest arrives.
func TestReaderTimeoutInSmallArray(t *testing.T) {
	timeout := os.ErrDeadlineExceeded
	long := "PRIVMSG #a :" + strings.Repeat("l", 200)
	r := NewReader(&scriptReader{steps: []step{
		{"PING a\r\nPRIV", timeout},
		{"", timeout},
		{"MSG #a :hi\r\nPRIV", timeout},
		{long[4:100], timeout},
		{long[100:] + "\r\n", nil},
	}})

	expect := func(want result, small bool, buffered string) {
		t.Helper()
		line, err := r.ReadLine()
		if got := (result{string(line), err}); !equalResults([]result{got}, []result{want}) {
			t.Fatalf("got %v, want %v", summarize([]result{got}), summarize([]result{want}))
		}
		if r.inSmall() != small || string(r.buf[r.r:r.w]) != buffered {
			t.Fatalf("after %v: small=%v, buffered %q; want small=%v, %q", want, r.inSmall(), r.buf[r.r:r.w], small, buffered)
		}
	}
	expect(result{line: "PING a"}, true, "PRIV")
	expect(result{err: timeout}, true, "PRIV") // the partial line waits in the small array
	// Reading on needs room for the rest: the partial line moves to a pooled
	// buffer.
	expect(result{err: timeout}, false, "PRIV")
	expect(result{line: "PRIVMSG #a :hi"}, false, "PRIV")
	expect(result{err: timeout}, false, "PRIV")
	expect(result{err: timeout}, false, long[:100])
	expect(result{line: long}, false, "")
	expect(result{err: io.EOF}, true, "")
}

// sharedPoolInput is reader id's input for TestReadersSharePool: lines of
// many lengths, each naming its reader, so one Reader's bytes showing up in
// another's line cannot go unnoticed.
func sharedPoolInput(id int) (input string, want []string) {
	var b strings.Builder
	for i := range 200 {
		line := fmt.Sprintf("PRIVMSG #r%d :%d %s", id, i, strings.Repeat(string(rune('a'+id)), (i*37+id*11)%480))
		if i%7 == 0 {
			line = fmt.Sprintf("@id=%d;i=%d;pad=%s PONG :r%d", id, i, strings.Repeat("p", i*10), id)
		}
		want = append(want, line)
		b.WriteString(line + "\r\n")
	}
	return b.String(), want
}

func newSharedPoolReader(id int, input string) *Reader {
	return NewReader(&timeoutReader{r: &chunkReader{data: []byte(input), chunk: 1 + id*29}, every: 3 + id%4})
}

// readSkippingTimeouts reads the next line, skipping deadline errors.
func readSkippingTimeouts(r *Reader) ([]byte, error) {
	for {
		line, err := r.ReadLine()
		if err != os.ErrDeadlineExceeded {
			return line, err
		}
	}
}

// TestReadersSharePool runs Readers that pass buffers to each other through
// the pool. In turns on one goroutine, where each buffer given back is the
// next one taken, every line must stay intact while the other Readers read,
// until its own Reader's next call. Then on a goroutine each, for the race
// detector. A buffer used after it was given back would show as another
// Reader's bytes.
func TestReadersSharePool(t *testing.T) {
	const readers = 8
	t.Run("turns", func(t *testing.T) {
		var rs []*Reader
		var wants [][]string
		for id := range readers {
			input, want := sharedPoolInput(id)
			rs = append(rs, newSharedPoolReader(id, input))
			wants = append(wants, want)
		}
		last := make([][]byte, readers) // each Reader's latest line, still valid
		for i := range wants[0] {
			for id, r := range rs {
				line, err := readSkippingTimeouts(r)
				if err != nil || string(line) != wants[id][i] {
					t.Fatalf("reader %d, line %d: got %.40q, %v; want %.40q", id, i, line, err, wants[id][i])
				}
				last[id] = line
				for other, l := range last {
					if l != nil && string(l) != wants[other][i-btoi(other > id)] {
						t.Fatalf("reader %d's line %d changed while reader %d read: %.40q", other, i, id, l)
					}
				}
			}
		}
	})
	t.Run("concurrent", func(t *testing.T) {
		errs := make(chan error, readers)
		for id := range readers {
			go func() {
				input, want := sharedPoolInput(id)
				r := newSharedPoolReader(id, input)
				for _, w := range want {
					if line, err := readSkippingTimeouts(r); err != nil || string(line) != w {
						errs <- fmt.Errorf("reader %d: got %.40q, %v; want %.40q", id, line, err, w)
						return
					}
				}
				errs <- nil
			}()
		}
		for range readers {
			if err := <-errs; err != nil {
				t.Error(err)
			}
		}
	})
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// timeoutReader makes every every-th Read fail with os.ErrDeadlineExceeded,
// alternately with no data and together with the data that Read returns,
// as a net.Conn may. injected counts the deadlines it returned.
type timeoutReader struct {
	r        io.Reader
	every    int
	n        int
	injected int
}

func (t *timeoutReader) Read(p []byte) (int, error) {
	t.n++
	if t.n%t.every != 0 {
		return t.r.Read(p)
	}
	if t.n%(2*t.every) == 0 {
		t.injected++
		return 0, os.ErrDeadlineExceeded
	}
	n, err := t.r.Read(p)
	if err != nil {
		return n, err
	}
	t.injected++
	return n, os.ErrDeadlineExceeded
}

func TestReadLinePerReadAllocs(t *testing.T) {
	if testing.CoverMode() != "" || raceEnabled {
		t.Skip("allocation counts are not meaningful under -cover or -race")
	}
	for _, line := range []string{"PONG :irc.livechat.example", benchTagged} {
		for _, timeout := range []bool{false, true} {
			r := NewReader(&lineReader{line: []byte(line + "\r\n"), timeout: timeout})
			for range 4 { // warm up the pool
				_, _ = r.ReadLine()
			}
			if got := testing.AllocsPerRun(1000, func() { _, _ = r.ReadLine() }); got != 0 {
				t.Errorf("ReadLine of %.20q, one per Read, timeout=%v: %v allocs, want 0", line, timeout, got)
			}
		}
	}
}

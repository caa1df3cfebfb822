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
		if err != nil && !errors.Is(err, ErrLineTooLong) {
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
			name:  "final unterminated line",
			input: "PING a\nPING b",
			want:  []result{{"PING a", nil}, {"PING b", nil}, {"", io.EOF}},
		},
		{
			name:  "final unterminated line with cr",
			input: "PING b\r",
			want:  []result{{"PING b", nil}, {"", io.EOF}},
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
			if rec.maxLen > smallBufSize {
				t.Errorf("buffer grew to %d bytes for an untagged line, want %d", rec.maxLen, smallBufSize)
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
		want       string
		maxBufSize int
	}{
		{"PING a", smallBufSize},
		{big[:len(big)-1], maxLineSize}, // grown for the tagged line
		{"PING b", smallBufSize},        // back to small once it is consumed
		{"PING c", smallBufSize},
	}
	for _, s := range steps {
		line, err := r.ReadLine()
		if err != nil || string(line) != s.want {
			t.Fatalf("ReadLine = %.30q, %v; want %.30q", line, err, s.want)
		}
		if len(r.buf) > s.maxBufSize {
			t.Errorf("after %.10q: buffer is %d bytes, want <= %d", s.want, len(r.buf), s.maxBufSize)
		}
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

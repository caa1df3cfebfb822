package jshistory

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/livechat/livechat/protocol"
	"github.com/livechat/livechat/rooms"
)

// An event travels as one JetStream message whose payload is a compact
// binary record, the same layout as daemon/historystore's (kept separate:
// the stream is read by every node and outlives any one binary, so it has
// its own version byte):
//
//	[0]     record format (formatV1)
//	[1:9]   At, Unix milliseconds, big-endian (read alone by time searches)
//	then uvarint-prefixed strings: Command, ID, Source, Account, Origin;
//	uvarint count and the Params; uvarint count+1 and the ExtParams (0 for
//	nil); uvarint count and each tag's key and value.
const (
	formatV1   = 1
	headerSize = 9
)

var errCorrupt = errors.New("jshistory: corrupt event record")

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// encodeEvent appends e's record to b.
func encodeEvent(b []byte, e *rooms.Event) []byte {
	b = append(b, formatV1)
	b = binary.BigEndian.AppendUint64(b, uint64(e.At.UnixMilli()))
	for _, s := range [...]string{e.Command, e.ID, e.Source, e.Account, e.Origin} {
		b = appendString(b, s)
	}
	b = binary.AppendUvarint(b, uint64(len(e.Params)))
	for _, p := range e.Params {
		b = appendString(b, p)
	}
	if e.ExtParams == nil {
		b = append(b, 0)
	} else {
		b = binary.AppendUvarint(b, uint64(len(e.ExtParams))+1)
		for _, p := range e.ExtParams {
			b = appendString(b, p)
		}
	}
	b = binary.AppendUvarint(b, uint64(len(e.Tags)))
	for _, t := range e.Tags {
		b = appendString(b, t.Key)
		b = appendString(b, t.Value)
	}
	return b
}

// recAt returns a record's time in Unix milliseconds without decoding it.
func recAt(v []byte) (int64, error) {
	if len(v) < headerSize || v[0] != formatV1 {
		return 0, errCorrupt
	}
	return int64(binary.BigEndian.Uint64(v[1:9])), nil
}

type recReader struct {
	b   []byte
	s   string
	off int
	err error
}

func (r *recReader) uvarint() uint64 {
	if r.err != nil {
		return 0
	}
	n, k := binary.Uvarint(r.b[r.off:])
	if k <= 0 {
		r.err = errCorrupt
		return 0
	}
	r.off += k
	return n
}

func (r *recReader) str() string {
	n := r.uvarint()
	if r.err != nil || n > uint64(len(r.b)-r.off) {
		r.err = errCorrupt
		return ""
	}
	f := r.s[r.off : r.off+int(n)]
	r.off += int(n)
	return f
}

// count reads a list length no longer than the record could hold.
func (r *recReader) count() int {
	n := r.uvarint()
	if n > uint64(len(r.b)-r.off) {
		r.err = errCorrupt
		return 0
	}
	return int(n)
}

// decodeEvent decodes a record; its strings share one allocation.
func decodeEvent(v []byte) (*rooms.Event, error) {
	if len(v) > 0 && v[0] > formatV1 {
		return nil, fmt.Errorf("jshistory: event record format %d is newer than this livechatd", v[0])
	}
	ms, err := recAt(v)
	if err != nil {
		return nil, err
	}
	body := v[headerSize:]
	r := recReader{b: body, s: string(body)}
	e := &rooms.Event{At: time.UnixMilli(ms)}
	e.Command, e.ID, e.Source, e.Account, e.Origin = r.str(), r.str(), r.str(), r.str(), r.str()
	if np := r.count(); np > 0 {
		e.Params = make([]string, np)
		for i := range e.Params {
			e.Params[i] = r.str()
		}
	}
	if ne := r.count(); ne > 0 {
		e.ExtParams = make([]string, ne-1)
		for i := range e.ExtParams {
			e.ExtParams[i] = r.str()
		}
	}
	if nt := r.count(); nt > 0 {
		e.Tags = make([]protocol.Tag, nt)
		for i := range e.Tags {
			e.Tags[i] = protocol.Tag{Key: r.str(), Value: r.str()}
		}
	}
	if r.err != nil {
		return nil, r.err
	}
	if r.off != len(body) {
		return nil, errCorrupt
	}
	return e, nil
}

package rooms

import (
	"strings"
	"sync"
)

// MemLog is a Log in memory (history.store: memory): each target keeps its
// newest events up to a bound, and a restart forgets them all. It is also
// the reference the durable stores are tested against. Safe for
// concurrent use.
type MemLog struct {
	mu      sync.Mutex
	max     int
	targets map[string]*History
}

var _ Log = (*MemLog)(nil)

// NewMemLog returns a log keeping up to max events per target.
func NewMemLog(max int) *MemLog {
	return &MemLog{max: max, targets: make(map[string]*History)}
}

func (l *MemLog) Append(target string, e *Event) {
	l.mu.Lock()
	defer l.mu.Unlock()
	h := l.targets[target]
	if h == nil {
		nh := NewHistory(l.max)
		h = &nh
		l.targets[target] = h
	}
	h.Add(e)
}

func (l *MemLog) Sync() error { return nil }

func (l *MemLog) Query(target string, q Query) ([]*Event, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	h := l.targets[target]
	if h == nil {
		return nil, nil
	}
	events, _ := h.Query(q)
	return events, nil
}

func (l *MemLog) Redact(target, id string) (*Event, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if h := l.targets[target]; h != nil {
		return h.Redact(id), nil
	}
	return nil, nil
}

func (l *MemLog) Delete(target string) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.targets, target)
	return nil
}

func (l *MemLog) Targets(prefix string) ([]TargetInfo, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []TargetInfo
	for name, h := range l.targets {
		if e := h.Newest(); e != nil && strings.HasPrefix(name, prefix) {
			out = append(out, TargetInfo{Name: name, Last: e.At})
		}
	}
	return out, nil
}

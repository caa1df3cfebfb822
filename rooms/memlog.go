package rooms

import (
	"container/list"
	"strings"
	"sync"
)

// MemLog is a Log in memory (history.store: memory): each target keeps its
// newest events up to a bound, the least recently active targets are
// forgotten beyond another, and a restart forgets them all. It is also the
// reference the durable stores are tested against. Safe for concurrent use.
type MemLog struct {
	mu         sync.Mutex
	max        int // events per target
	maxTargets int
	targets    map[string]*memTarget
	lru        list.List // of *memTarget, most recently appended first
}

type memTarget struct {
	name    string
	history History
	elem    *list.Element
}

var _ Log = (*MemLog)(nil)

// NewMemLog returns a log keeping up to max events per target, for at
// most maxTargets targets (0: no bound).
func NewMemLog(max, maxTargets int) *MemLog {
	return &MemLog{max: max, maxTargets: maxTargets, targets: make(map[string]*memTarget)}
}

func (l *MemLog) Append(target string, e *Event) {
	l.mu.Lock()
	defer l.mu.Unlock()
	t := l.targets[target]
	if t == nil {
		if l.maxTargets > 0 && len(l.targets) >= l.maxTargets {
			oldest := l.lru.Back().Value.(*memTarget)
			l.lru.Remove(oldest.elem)
			delete(l.targets, oldest.name)
		}
		t = &memTarget{name: target, history: NewHistory(l.max)}
		t.elem = l.lru.PushFront(t)
		l.targets[target] = t
	} else {
		l.lru.MoveToFront(t.elem)
	}
	t.history.Add(e)
}

func (l *MemLog) Sync() error { return nil }

func (l *MemLog) Query(target string, q Query) ([]*Event, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	t := l.targets[target]
	if t == nil {
		return nil, nil
	}
	events, _ := t.history.Query(q)
	return events, nil
}

func (l *MemLog) Redact(target, id string) (*Event, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if t := l.targets[target]; t != nil {
		return t.history.Redact(id), nil
	}
	return nil, nil
}

func (l *MemLog) Delete(target string) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if t := l.targets[target]; t != nil {
		l.lru.Remove(t.elem)
		delete(l.targets, target)
	}
	return nil
}

func (l *MemLog) Targets(prefix string) ([]TargetInfo, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []TargetInfo
	for name, t := range l.targets {
		if e := t.history.all.newest(); e != nil && strings.HasPrefix(name, prefix) {
			out = append(out, TargetInfo{Name: name, Last: e.At})
		}
	}
	return out, nil
}

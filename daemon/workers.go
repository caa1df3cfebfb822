package daemon

import "time"

// workerIdle is how long a worker waits for another line before it exits.
const workerIdle = 10 * time.Second

// workerPool runs sessions' line handlers on long-lived goroutines whose
// stacks have already grown to what handlers need. It is elastic: a line
// goes to an idle worker if there is one, else to a new worker, so a
// handler that blocks (hashing a password, a busy room) never holds up
// anyone else's line. Workers exit after workerIdle without work.
type workerPool struct {
	tasks chan *Session // unbuffered: a send succeeds only if a worker waits
	idle  time.Duration
}

func newWorkerPool(idle time.Duration) workerPool {
	return workerPool{tasks: make(chan *Session), idle: idle}
}

// submit has s.runStep called on some worker.
func (p *workerPool) submit(s *Session) {
	select {
	case p.tasks <- s:
	default:
		go p.work(s)
	}
}

func (p *workerPool) work(s *Session) {
	idle := time.NewTimer(p.idle)
	defer idle.Stop()
	for {
		s.runStep()
		idle.Reset(p.idle)
		select {
		case s = <-p.tasks:
		case <-idle.C:
			return
		}
	}
}

package daemon

import "time"

// floodBucket is a per-connection token bucket. A client within its burst
// pays nothing; past it, each line waits until a token is due (fake lag,
// which also stops reading from the client, so its excess stays in its own
// socket buffers). A client that stays in debt for longer than maxLag,
// sending faster than the rate the whole time, is flooding.
//
// Not safe for concurrent use: only the session's reader goroutine uses it.
type floodBucket struct {
	tokens       float64
	last         time.Time
	laggingSince time.Time // zero while the client is within its budget
}

// take spends one token at now and returns how long the line must wait,
// or ok=false when the client has been lagged for longer than maxLag.
func (b *floodBucket) take(now time.Time, burst int, rate float64, maxLag time.Duration) (wait time.Duration, ok bool) {
	if b.last.IsZero() {
		b.tokens = float64(burst)
	} else {
		b.tokens = min(b.tokens+now.Sub(b.last).Seconds()*rate, float64(burst))
	}
	b.last = now
	b.tokens--
	if b.tokens >= 0 {
		b.laggingSince = time.Time{}
		return 0, true
	}
	wait = time.Duration(-b.tokens / rate * float64(time.Second))
	if b.laggingSince.IsZero() {
		b.laggingSince = now
	}
	if now.Sub(b.laggingSince)+wait > maxLag {
		return wait, false
	}
	return wait, true
}

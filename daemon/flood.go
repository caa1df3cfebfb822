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
	last         int64 // monoNanos of the last line; 0 before the first
	laggingSince int64 // monoNanos; 0 while the client is within its budget
}

// monoEpoch anchors monoNanos.
var monoEpoch = time.Now()

// monoNanos is t as nanoseconds on the monotonic clock since the process
// started, never 0 for a time taken with time.Now, so that 0 can mean
// "never". Every session keeps a few instants; as int64 they take 8
// bytes instead of a time.Time's 24.
func monoNanos(t time.Time) int64 {
	return int64(t.Sub(monoEpoch)) + 1
}

// take spends one token at now and returns how long the line must wait,
// or ok=false when the client has been lagged for longer than maxLag.
func (b *floodBucket) take(now time.Time, burst int, rate float64, maxLag time.Duration) (wait time.Duration, ok bool) {
	t := monoNanos(now)
	if b.last == 0 {
		b.tokens = float64(burst)
	} else {
		b.tokens = min(b.tokens+time.Duration(t-b.last).Seconds()*rate, float64(burst))
	}
	b.last = t
	b.tokens--
	if b.tokens >= 0 {
		b.laggingSince = 0
		return 0, true
	}
	wait = time.Duration(-b.tokens / rate * float64(time.Second))
	if b.laggingSince == 0 {
		b.laggingSince = t
	}
	if time.Duration(t-b.laggingSince)+wait > maxLag {
		return wait, false
	}
	return wait, true
}

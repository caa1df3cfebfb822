//go:build !race

package protocol

// raceEnabled lets allocation tests skip themselves: the race detector's
// instrumentation changes allocation counts.
const raceEnabled = false

package logtest_test

import (
	"testing"

	"github.com/livechat/livechat/rooms"
	"github.com/livechat/livechat/rooms/logtest"
)

// TestMemLog holds the reference Log to its own contract.
func TestMemLog(t *testing.T) {
	logtest.Run(t, func(t *testing.T) rooms.Log { return rooms.NewMemLog(1<<20, 0) })
}

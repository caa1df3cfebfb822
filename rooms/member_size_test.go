package rooms

import (
	"testing"
	"unsafe"
)

// A room keeps a member record for every member, so its size is part of
// what every idle connection costs (docs/BENCHMARKS.md, "Idle memory and
// connect storms"). 176 bytes is a size class of Go's allocator; the
// record was 256 while it kept the join-only fields and an unused time.
func TestMemberSize(t *testing.T) {
	if unsafe.Sizeof(uintptr(0)) != 8 {
		t.Skip("sizes are for 64-bit platforms")
	}
	if got := unsafe.Sizeof(member{}); got > 176 {
		t.Fatalf("member is %d bytes, over 176: keep join-only state out of it", got)
	}
}

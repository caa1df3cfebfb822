package daemon

import (
	"testing"
	"unsafe"
)

// Every connection keeps a Session, so its size is paid 10,000 times at
// 10,000 idle connections: keep it within the allocator's 512-byte size
// class (the next is 576). State few connections use goes in sessionRare.
func TestSessionSize(t *testing.T) {
	if unsafe.Sizeof(uintptr(0)) != 8 {
		t.Skip("the size is worked out for 64-bit platforms")
	}
	if got := unsafe.Sizeof(Session{}); got > 512 {
		t.Errorf("Session is %d bytes, want at most 512", got)
	}
}

package historystore

import (
	"os"
	"syscall"
)

// fdatasync syncs f's data without its times: the log is rewritten in
// place, so only its data changes.
func fdatasync(f *os.File) error { return syscall.Fdatasync(int(f.Fd())) }

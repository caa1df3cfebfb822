//go:build !linux

package historystore

import "os"

func fdatasync(f *os.File) error { return f.Sync() }

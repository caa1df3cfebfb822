// Package durable holds what the file stores share to make a write
// survive a crash.
package durable

import "os"

// SyncDir makes a rename (or a create) in dir durable: the new name is
// on disk only once the directory itself is synced.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

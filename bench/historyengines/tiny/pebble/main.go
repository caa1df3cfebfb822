// Command pebble is the smallest program that stores a key in Pebble, to
// measure what the engine adds to a binary.
package main

import (
	"fmt"
	"os"

	"github.com/cockroachdb/pebble/v2"
)

func main() {
	db, err := pebble.Open(os.Args[1], &pebble.Options{})
	if err == nil {
		err = db.Set([]byte("k"), []byte("v"), pebble.Sync)
		db.Close()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

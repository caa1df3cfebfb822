// Command none is the baseline for the dependency-weight comparison: a
// program that writes a key to a file with the standard library only.
package main

import (
	"fmt"
	"os"
)

func main() {
	if err := os.WriteFile(os.Args[1], []byte("k=v"), 0o600); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

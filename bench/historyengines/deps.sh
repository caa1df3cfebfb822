#!/usr/bin/env bash
# Dependency weight of each engine: modules in the build list of a module
# that requires only that engine (go list -m all), modules linked into a
# tiny program that uses it (go version -m), and that program's size,
# stripped as livechatd is released (-s -w) and not.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
pebble=$(cd "$here" && go list -m -f '{{.Version}}' github.com/cockroachdb/pebble/v2)
bbolt=$(cd "$here" && go list -m -f '{{.Version}}' go.etcd.io/bbolt)
echo "| program | modules in go list -m all | modules linked | binary | stripped (-s -w) |"
echo "|---|---|---|---|---|"
for p in none bbolt pebble; do
	m="$tmp/$p"
	mkdir -p "$m"
	cp "$here/tiny/$p/main.go" "$m/"
	(
		cd "$m"
		go mod init "tiny/$p" >/dev/null 2>&1
		case $p in
		bbolt) go get "go.etcd.io/bbolt@$bbolt" >/dev/null 2>&1 ;;
		pebble) go get "github.com/cockroachdb/pebble/v2@$pebble" >/dev/null 2>&1 ;;
		esac
		go mod tidy >/dev/null 2>&1
		all=$(($(go list -m all | wc -l) - 1))
		go build -trimpath -o "$m/full" .
		go build -trimpath -ldflags='-s -w' -o "$m/stripped" .
		linked=$(go version -m "$m/full" | grep -c $'^\tdep' || true)
		printf '| %s | %d | %d | %.1f MiB | %.1f MiB |\n' "$p" "$all" "$linked" \
			"$(echo "$(stat -c %s "$m/full") / 1048576" | bc -l)" \
			"$(echo "$(stat -c %s "$m/stripped") / 1048576" | bc -l)"
	)
done

# What each engine would add to livechatd itself (shared modules such as
# prometheus count once): the daemon as committed, then with a file that
# opens a store of each engine when an unset variable asks it to, so the
# linker keeps the engine's code.
root=$(git -C "$here" rev-parse --show-toplevel)
echo
echo "| livechatd | modules in go list -m all | modules linked | binary | stripped (-s -w) |"
echo "|---|---|---|---|---|"
for p in none bbolt pebble; do
	src="$tmp/livechatd-$p"
	mkdir -p "$src"
	git -C "$root" archive HEAD | tar -x -C "$src"
	case $p in
	bbolt)
		cat >"$src/cmd/livechatd/zz_weight.go" <<'GO'
package main

import (
	"os"

	bolt "go.etcd.io/bbolt"
)

func init() {
	if p := os.Getenv("WEIGHT_OPEN"); p != "" {
		db, _ := bolt.Open(p, 0o600, nil)
		db.Update(func(tx *bolt.Tx) error { _, err := tx.CreateBucketIfNotExists([]byte("b")); return err })
		db.Close()
	}
}
GO
		;;
	pebble)
		cat >"$src/cmd/livechatd/zz_weight.go" <<'GO'
package main

import (
	"os"

	"github.com/cockroachdb/pebble/v2"
)

func init() {
	if p := os.Getenv("WEIGHT_OPEN"); p != "" {
		db, _ := pebble.Open(p, &pebble.Options{})
		db.Set([]byte("k"), []byte("v"), pebble.Sync)
		it, _ := db.NewIter(nil)
		for it.First(); it.Valid(); it.Next() {
		}
		it.Close()
		db.Close()
	}
}
GO
		(cd "$src" && go get "github.com/cockroachdb/pebble/v2@$pebble" >/dev/null 2>&1)
		;;
	esac
	(
		cd "$src"
		go mod tidy >/dev/null 2>&1
		all=$(($(go list -m all | wc -l) - 1))
		go build -trimpath -o "$src/full" ./cmd/livechatd
		go build -trimpath -ldflags='-s -w' -o "$src/stripped" ./cmd/livechatd
		linked=$(go version -m "$src/full" | grep -c $'^\tdep' || true)
		label=$p
		[ "$p" = none ] && label="as committed (bbolt already used by accounts)"
		[ "$p" = bbolt ] && label="+ a bbolt history store"
		[ "$p" = pebble ] && label="+ a Pebble history store"
		printf '| %s | %d | %d | %.1f MiB | %.1f MiB |\n' "$label" "$all" "$linked" \
			"$(echo "$(stat -c %s "$src/full") / 1048576" | bc -l)" \
			"$(echo "$(stat -c %s "$src/stripped") / 1048576" | bc -l)"
	)
done

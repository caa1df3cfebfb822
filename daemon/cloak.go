package daemon

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base32"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"strings"

	"github.com/livechat/livechat/configs"
	"github.com/livechat/livechat/internal/durable"
)

// cloakKeyFile is the generated cloak key's name under data_dir.
const cloakKeyFile = "cloak.key"

// cloakBits is how much of the keyed hash a cloak shows: 80 bits, 16
// base32 characters, too many to search for a collision with someone's
// cloak.
const cloakBits = 80

var cloakEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// cloakHost returns the host a client at address ip is shown with:
// <hash>.<suffix> with cloaking on (the hash keyed by cloak.secret, or by
// key when that is empty), the address itself with it off. Addresses in
// the same cloak.ipv4_prefix / cloak.ipv6_prefix block get the same cloak,
// so a ban on it covers the block.
func cloakHost(c configs.Cloak, key []byte, ip string) string {
	if !c.Enabled {
		return hostIP(ip)
	}
	if c.Secret != "" {
		key = []byte(c.Secret)
	}
	mac := hmac.New(sha256.New, key)
	if addr, err := netip.ParseAddr(ip); err == nil {
		addr = addr.Unmap().WithZone("")
		bits := c.IPv6Prefix
		if addr.Is4() {
			bits = c.IPv4Prefix
		}
		if p, err := addr.Prefix(bits); err == nil {
			addr = p.Addr()
		}
		mac.Write(addr.AsSlice())
	} else {
		// Not an IP (a pipe in tests): hash the text, tagged so it
		// cannot collide with an address's bytes.
		mac.Write([]byte("text:" + ip))
	}
	return cloakEncoding.EncodeToString(mac.Sum(nil)[:cloakBits/8]) + "." + c.Suffix
}

// hostIP writes an address where a host goes: a protocol parameter may
// not start with ':' ("::1" becomes "0::1", the same address).
func hostIP(ip string) string {
	if strings.HasPrefix(ip, ":") {
		return "0" + ip
	}
	return ip
}

// OpenCloakKey returns the key host cloaks are made with when
// cloak.secret is not set: data_dir/cloak.key, created on first start,
// so cloaks (and the bans on them) stay the same across restarts. With
// accounts.store memory nothing is kept on disk, and it returns nil: the
// server then makes a random key that lasts as long as the process.
func OpenCloakKey(cfg *configs.Config) ([]byte, error) {
	if cfg.Accounts.Store == "memory" {
		return nil, nil
	}
	path := filepath.Join(cfg.DataDir, cloakKeyFile)
	key, err := readCloakKey(path)
	if !errors.Is(err, fs.ErrNotExist) {
		return key, err
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("cloak key: %w", err)
	}
	key = randomCloakKey()
	if err := createFileOnce(path, []byte(hex.EncodeToString(key)+"\n")); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return readCloakKey(path) // another daemon made it first
		}
		return nil, fmt.Errorf("cloak key: %w", err)
	}
	return key, nil
}

func readCloakKey(path string) ([]byte, error) {
	text, err := os.ReadFile(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, err
		}
		return nil, fmt.Errorf("cloak key: %w", err)
	}
	key, err := hex.DecodeString(strings.TrimSpace(string(text)))
	if err != nil || len(key) < 16 {
		return nil, fmt.Errorf("cloak key: %s must hold at least 32 hex digits; remove it to have a new one made (every cloak then changes)", path)
	}
	return key, nil
}

func randomCloakKey() []byte {
	key := make([]byte, 32)
	rand.Read(key) // never fails (crypto/rand, Go 1.24)
	return key
}

// createFileOnce writes data to path, mode 0600, only if path does not
// exist (fs.ErrExist otherwise): written and synced under a temporary
// name, then linked into place, so a crash or a second daemon never sees
// a half-written file.
func createFileOnce(path string, data []byte) error {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Link(tmp.Name(), path); err != nil {
		return err
	}
	return durable.SyncDir(dir)
}

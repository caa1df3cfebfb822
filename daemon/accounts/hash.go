package accounts

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"golang.org/x/crypto/argon2"
)

// Fixed sizes of new hashes. They are not Params because there is no reason
// to tune them: 16 bytes of salt and a 32-byte key are the usual choice.
const (
	SaltLen = 16
	KeyLen  = 32
)

// Bounds accepted when parsing a stored hash. A stored hash is trusted data,
// but a corrupt or hand-edited record must not be able to make one login
// allocate gigabytes, spin for minutes or panic inside argon2.
const (
	maxHashLen    = 512
	maxMemoryKiB  = 1 << 21 // 2 GiB
	maxTime       = 64
	minSaltLen    = 8
	maxSaltLen    = 64
	minKeyLen     = 16
	maxKeyLen     = 64
	phcPrefix     = "$argon2id$v=19$"
	argon2Version = 19
)

// ErrMalformedHash is returned when a stored hash is not a well-formed
// argon2id PHC string within sane bounds. Its messages say which part is
// wrong but never echo the hash itself.
var ErrMalformedHash = errors.New("accounts: malformed password hash")

// Params are the argon2id cost parameters.
type Params struct {
	Memory  uint32 // KiB
	Time    uint32 // iterations (t)
	Threads uint8  // lanes (p)
}

// DefaultParams returns the OWASP recommendation for argon2id:
// m=19456 KiB (19 MiB), t=2, p=1.
func DefaultParams() Params {
	return Params{Memory: 19456, Time: 2, Threads: 1}
}

// Validate reports whether p can be used to make new hashes.
func (p Params) Validate() error {
	switch {
	case p.Time < 1 || p.Time > maxTime:
		return fmt.Errorf("accounts: argon2 time must be 1..%d, got %d", maxTime, p.Time)
	case p.Threads < 1:
		return errors.New("accounts: argon2 threads must be at least 1")
	case p.Memory < 8*uint32(p.Threads) || p.Memory > maxMemoryKiB:
		// argon2 silently raises memory below 8*p; refuse instead so the
		// encoded m= is the memory actually used.
		return fmt.Errorf("accounts: argon2 memory must be %d..%d KiB, got %d", 8*uint32(p.Threads), maxMemoryKiB, p.Memory)
	}
	return nil
}

// Hash is a parsed PHC string.
type Hash struct {
	Params Params
	Salt   []byte
	Key    []byte
}

// String encodes h as $argon2id$v=19$m=M,t=T,p=P$salt$key (unpadded
// standard base64).
func (h Hash) String() string {
	return fmt.Sprintf("%sm=%d,t=%d,p=%d$%s$%s", phcPrefix,
		h.Params.Memory, h.Params.Time, h.Params.Threads,
		base64.RawStdEncoding.EncodeToString(h.Salt),
		base64.RawStdEncoding.EncodeToString(h.Key))
}

// NeedsUpgrade reports whether h is weaker than hashes made now with cur:
// less memory, fewer iterations, or a shorter salt or key. Threads are not
// compared: more lanes do not make a hash stronger.
func (h Hash) NeedsUpgrade(cur Params) bool {
	return h.Params.Memory < cur.Memory || h.Params.Time < cur.Time ||
		len(h.Salt) < SaltLen || len(h.Key) < KeyLen
}

// HashPassword hashes password with a fresh random salt and returns the PHC
// string. It costs a full argon2id run; Service calls it on the pool. Safe
// for concurrent use. The error never contains the password.
func HashPassword(password string, p Params) (string, error) {
	if err := p.Validate(); err != nil {
		return "", err
	}
	salt := make([]byte, SaltLen)
	randRead(salt)
	key := argon2.IDKey([]byte(password), salt, p.Time, p.Memory, p.Threads, KeyLen)
	return Hash{Params: p, Salt: salt, Key: key}.String(), nil
}

// VerifyPassword checks password against the PHC string encoded, using the
// parameters recorded in it (so raising the defaults does not break old
// accounts). needsUpgrade is true when the password matched and the hash is
// weaker than cur; the caller should then store a fresh HashPassword.
// A malformed hash yields an error wrapping ErrMalformedHash, never a panic.
// Safe for concurrent use.
func VerifyPassword(password, encoded string, cur Params) (match, needsUpgrade bool, err error) {
	h, err := ParseHash(encoded)
	if err != nil {
		return false, false, err
	}
	key := argon2.IDKey([]byte(password), h.Salt, h.Params.Time, h.Params.Memory, h.Params.Threads, uint32(len(h.Key)))
	// Constant-time so that the comparison does not leak how many leading
	// bytes of the key matched.
	if subtle.ConstantTimeCompare(key, h.Key) != 1 {
		return false, false, nil
	}
	return true, h.NeedsUpgrade(cur), nil
}

// ParseHash parses an argon2id PHC string as written by HashPassword. It is
// strict (exact field order, version 19, unpadded base64) and bounds every
// parameter; anything else is an error wrapping ErrMalformedHash.
func ParseHash(encoded string) (Hash, error) {
	bad := func(what string) (Hash, error) {
		return Hash{}, fmt.Errorf("%w: %s", ErrMalformedHash, what)
	}
	if len(encoded) > maxHashLen {
		return bad("too long")
	}
	if !strings.HasPrefix(encoded, phcPrefix) {
		if strings.HasPrefix(encoded, "$argon2id$") {
			return bad("unsupported version")
		}
		return bad("not an argon2id hash")
	}
	// After the prefix: "m=..,t=..,p=..$salt$key".
	parts := strings.Split(encoded[len(phcPrefix):], "$")
	if len(parts) != 3 {
		return bad("wrong number of fields")
	}
	var p Params
	kv := strings.Split(parts[0], ",")
	if len(kv) != 3 {
		return bad("wrong number of parameters")
	}
	for i, name := range []string{"m", "t", "p"} {
		v, ok := strings.CutPrefix(kv[i], name+"=")
		if !ok {
			return bad("expected parameter " + name)
		}
		bits := 32
		if name == "p" {
			bits = 8
		}
		n, err := strconv.ParseUint(v, 10, bits)
		if err != nil {
			return bad("invalid value for " + name)
		}
		switch name {
		case "m":
			p.Memory = uint32(n)
		case "t":
			p.Time = uint32(n)
		case "p":
			p.Threads = uint8(n)
		}
	}
	if err := p.Validate(); err != nil {
		return bad("parameters out of range")
	}
	enc := base64.RawStdEncoding.Strict()
	salt, err := enc.DecodeString(parts[1])
	if err != nil || len(salt) < minSaltLen || len(salt) > maxSaltLen {
		return bad("invalid salt")
	}
	key, err := enc.DecodeString(parts[2])
	if err != nil || len(key) < minKeyLen || len(key) > maxKeyLen {
		return bad("invalid key")
	}
	return Hash{Params: p, Salt: salt, Key: key}, nil
}

// randRead fills b with random bytes. crypto/rand.Read never fails since
// Go 1.24 (it aborts the program instead), so there is no error to return.
func randRead(b []byte) { _, _ = rand.Read(b) }

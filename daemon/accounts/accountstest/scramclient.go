package accountstest

import (
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// SCRAMClient is the client side of SCRAM-SHA-256 (RFC 5802, RFC 7677),
// written from the RFC for tests, independently of the library the server
// uses, so that the two check each other. It does not SASLprep: test
// passwords are ASCII.
type SCRAMClient struct {
	User, Password string
	// AuthzID, if set, asks to act as that identity.
	AuthzID string

	nonce, first string
	serverSig    []byte
}

// First returns client-first-message.
func (c *SCRAMClient) First() string {
	var b [18]byte
	rand.Read(b[:])
	c.nonce = base64.RawStdEncoding.EncodeToString(b[:])
	c.first = "n=" + scramName(c.User) + ",r=" + c.nonce
	gs2 := "n,,"
	if c.AuthzID != "" {
		gs2 = "n,a=" + scramName(c.AuthzID) + ","
	}
	return gs2 + c.first
}

// Final answers server-first-message with client-final-message.
func (c *SCRAMClient) Final(serverFirst string) (string, error) {
	attrs := map[string]string{}
	for _, kv := range strings.Split(serverFirst, ",") {
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			return "", fmt.Errorf("server-first %q: no '=' in %q", serverFirst, kv)
		}
		attrs[k] = v
	}
	nonce, salt64, iters := attrs["r"], attrs["s"], attrs["i"]
	if !strings.HasPrefix(nonce, c.nonce) || len(nonce) == len(c.nonce) {
		return "", fmt.Errorf("server nonce %q does not extend ours", nonce)
	}
	salt, err := base64.StdEncoding.DecodeString(salt64)
	if err != nil {
		return "", fmt.Errorf("salt: %w", err)
	}
	n, err := strconv.Atoi(iters)
	if err != nil || n < 1 {
		return "", fmt.Errorf("iteration count %q", iters)
	}
	salted, err := pbkdf2.Key(sha256.New, c.Password, salt, n, sha256.Size)
	if err != nil {
		return "", err
	}
	clientKey := mac(salted, "Client Key")
	storedKey := sha256.Sum256(clientKey)
	gs2 := "n,,"
	if c.AuthzID != "" {
		gs2 = "n,a=" + scramName(c.AuthzID) + ","
	}
	withoutProof := "c=" + base64.StdEncoding.EncodeToString([]byte(gs2)) + ",r=" + nonce
	authMsg := c.first + "," + serverFirst + "," + withoutProof
	sig := mac(storedKey[:], authMsg)
	proof := make([]byte, len(clientKey))
	for i := range proof {
		proof[i] = clientKey[i] ^ sig[i]
	}
	c.serverSig = mac(mac(salted, "Server Key"), authMsg)
	return withoutProof + ",p=" + base64.StdEncoding.EncodeToString(proof), nil
}

// Verify checks server-final-message: the server proves it knew the keys.
func (c *SCRAMClient) Verify(serverFinal string) error {
	v, ok := strings.CutPrefix(serverFinal, "v=")
	if !ok {
		return fmt.Errorf("server-final %q", serverFinal)
	}
	got, err := base64.StdEncoding.DecodeString(v)
	if err != nil || !hmac.Equal(got, c.serverSig) {
		return errors.New("server signature does not match")
	}
	return nil
}

func mac(key []byte, msg string) []byte {
	h := hmac.New(sha256.New, key)
	h.Write([]byte(msg))
	return h.Sum(nil)
}

// scramName escapes ',' and '=' as RFC 5802 saslname.
func scramName(s string) string {
	return strings.NewReplacer("=", "=3D", ",", "=2C").Replace(s)
}

package accounts

import (
	"errors"
	"regexp"
	"strings"
	"testing"
)

var phcRE = regexp.MustCompile(`^\$argon2id\$v=19\$m=(\d+),t=(\d+),p=(\d+)\$[A-Za-z0-9+/]{22}\$[A-Za-z0-9+/]{43}$`)

func TestHashRoundTrip(t *testing.T) {
	enc, err := HashPassword("correct horse", fastParams)
	if err != nil {
		t.Fatal(err)
	}
	if !phcRE.MatchString(enc) || !strings.Contains(enc, "$m=64,t=1,p=1$") {
		t.Fatalf("not a PHC string with our params: %q", enc)
	}
	h, err := ParseHash(enc)
	if err != nil {
		t.Fatal(err)
	}
	if h.Params != fastParams || len(h.Salt) != SaltLen || len(h.Key) != KeyLen {
		t.Fatalf("parsed %+v", h)
	}
	if h.String() != enc {
		t.Fatalf("re-encode: %q != %q", h.String(), enc)
	}

	match, up, err := VerifyPassword("correct horse", enc, fastParams)
	if err != nil || !match || up {
		t.Fatalf("right password: match=%v upgrade=%v err=%v", match, up, err)
	}
	match, up, err = VerifyPassword("correct horsf", enc, fastParams)
	if err != nil || match || up {
		t.Fatalf("wrong password: match=%v upgrade=%v err=%v", match, up, err)
	}

	enc2, _ := HashPassword("correct horse", fastParams)
	if enc2 == enc {
		t.Fatal("two hashes of one password are equal: salt not random")
	}
}

// The one test with the real default cost.
func TestHashDefaultParams(t *testing.T) {
	enc, err := HashPassword("hunter2hunter2", DefaultParams())
	if err != nil {
		t.Fatal(err)
	}
	if !phcRE.MatchString(enc) || !strings.Contains(enc, "$m=19456,t=2,p=1$") {
		t.Fatalf("unexpected encoding %q", enc)
	}
	match, up, err := VerifyPassword("hunter2hunter2", enc, DefaultParams())
	if err != nil || !match || up {
		t.Fatalf("match=%v upgrade=%v err=%v", match, up, err)
	}
}

// A hash from a third-party implementation (the RFC 9106 style encoding,
// password "password", salt "somesalt") must verify: this pins our PHC
// parsing and key derivation against an outside reference.
func TestVerifyKnownVector(t *testing.T) {
	// Produced by the reference argon2 CLI:
	//   echo -n password | argon2 somesalt -id -t 2 -m 16 -p 1 -l 32 -e
	const enc = "$argon2id$v=19$m=65536,t=2,p=1$c29tZXNhbHQ$CTFhFdXPJO1aFaMaO6Mm5c8y7cJHAph8ArZWb2GRPPc"
	match, _, err := VerifyPassword("password", enc, DefaultParams())
	if err != nil || !match {
		t.Fatalf("reference vector: match=%v err=%v", match, err)
	}
}

func TestNeedsUpgrade(t *testing.T) {
	weak := fastParams
	enc, _ := HashPassword("pw-pw-pw-pw", weak)

	for _, tc := range []struct {
		cur  Params
		want bool
	}{
		{weak, false},
		{Params{Memory: 128, Time: 1, Threads: 1}, true},
		{Params{Memory: 64, Time: 2, Threads: 1}, true},
		{Params{Memory: 64, Time: 1, Threads: 2}, false}, // lanes are not strength
		{Params{Memory: 32, Time: 1, Threads: 1}, false}, // current weaker: keep
	} {
		match, up, err := VerifyPassword("pw-pw-pw-pw", enc, tc.cur)
		if err != nil || !match || up != tc.want {
			t.Errorf("cur %+v: match=%v upgrade=%v err=%v, want upgrade=%v", tc.cur, match, up, err, tc.want)
		}
	}
	// A wrong password never asks for an upgrade.
	if _, up, _ := VerifyPassword("nope", enc, DefaultParams()); up {
		t.Error("upgrade requested for a wrong password")
	}
	// A short salt or key is weak regardless of params.
	h, _ := ParseHash(enc)
	h.Key = h.Key[:16]
	if !h.NeedsUpgrade(weak) {
		t.Error("16-byte key not reported as needing upgrade")
	}
}

var malformedHashes = []string{
	"",
	"$",
	"garbage",
	"$argon2id$",
	"$argon2id$v=19$",
	"$argon2i$v=19$m=64,t=1,p=1$c29tZXNhbHRzYWx0$AAAAAAAAAAAAAAAAAAAAAA",
	"$argon2id$v=16$m=64,t=1,p=1$c29tZXNhbHRzYWx0$AAAAAAAAAAAAAAAAAAAAAA",
	"$argon2id$v=19$m=64,t=1$c29tZXNhbHRzYWx0$AAAAAAAAAAAAAAAAAAAAAA",
	"$argon2id$v=19$t=1,m=64,p=1$c29tZXNhbHRzYWx0$AAAAAAAAAAAAAAAAAAAAAA",
	"$argon2id$v=19$m=64,t=1,p=1,x=2$c29tZXNhbHRzYWx0$AAAAAAAAAAAAAAAAAAAAAA",
	"$argon2id$v=19$m=64,t=1,p=1$c29tZXNhbHRzYWx0",
	"$argon2id$v=19$m=64,t=1,p=1$c29tZXNhbHRzYWx0$AAAAAAAAAAAAAAAAAAAAAA$extra",
	"$argon2id$v=19$m=0,t=1,p=1$c29tZXNhbHRzYWx0$AAAAAAAAAAAAAAAAAAAAAA",
	"$argon2id$v=19$m=64,t=0,p=1$c29tZXNhbHRzYWx0$AAAAAAAAAAAAAAAAAAAAAA",
	"$argon2id$v=19$m=64,t=1,p=0$c29tZXNhbHRzYWx0$AAAAAAAAAAAAAAAAAAAAAA",
	"$argon2id$v=19$m=64,t=1,p=256$c29tZXNhbHRzYWx0$AAAAAAAAAAAAAAAAAAAAAA",
	"$argon2id$v=19$m=4294967295,t=1,p=1$c29tZXNhbHRzYWx0$AAAAAAAAAAAAAAAAAAAAAA",
	"$argon2id$v=19$m=99999999999,t=1,p=1$c29tZXNhbHRzYWx0$AAAAAAAAAAAAAAAAAAAAAA",
	"$argon2id$v=19$m=64,t=4294967295,p=1$c29tZXNhbHRzYWx0$AAAAAAAAAAAAAAAAAAAAAA",
	"$argon2id$v=19$m=-64,t=1,p=1$c29tZXNhbHRzYWx0$AAAAAAAAAAAAAAAAAAAAAA",
	"$argon2id$v=19$m=+64,t=1,p=1$c29tZXNhbHRzYWx0$AAAAAAAAAAAAAAAAAAAAAA",
	"$argon2id$v=19$m= 64,t=1,p=1$c29tZXNhbHRzYWx0$AAAAAAAAAAAAAAAAAAAAAA",
	"$argon2id$v=19$m=64,t=1,p=1$c29tZXNhbHRzYWx0$AAAAAAAAAAAAAAAAAAAAAA==",    // padded
	"$argon2id$v=19$m=64,t=1,p=1$c29tZXNhbHRzYWx0$AAAAAAAAAAAAAAAAAAAA!!AA",    // bad char
	"$argon2id$v=19$m=64,t=1,p=1$c29tZQ$AAAAAAAAAAAAAAAAAAAAAA",                // salt 4 bytes
	"$argon2id$v=19$m=64,t=1,p=1$c29tZXNhbHRzYWx0$AAAAAAAA",                    // key 6 bytes
	"$argon2id$v=19$m=64,t=1,p=1$$AAAAAAAAAAAAAAAAAAAAAA",                      // empty salt
	"$argon2id$v=19$m=64,t=1,p=1$c29tZXNhbHRzYWx0$",                            // empty key
	"$argon2id$v=19$m=64,t=1,p=1$c29tZXNhbHRzYWx0$" + strings.Repeat("A", 600), // too long
	"\x00\xff$argon2id$",
}

func TestParseHashMalformed(t *testing.T) {
	for _, enc := range malformedHashes {
		if _, err := ParseHash(enc); !errors.Is(err, ErrMalformedHash) {
			t.Errorf("ParseHash(%q) = %v, want ErrMalformedHash", enc, err)
		} else if len(enc) > 20 && strings.Contains(err.Error(), enc[len(enc)-10:]) {
			t.Errorf("error echoes the hash: %v", err)
		}
		match, up, err := VerifyPassword("pw", enc, fastParams)
		if match || up || !errors.Is(err, ErrMalformedHash) {
			t.Errorf("VerifyPassword(%q) = %v %v %v", enc, match, up, err)
		}
	}
}

func TestParamsValidate(t *testing.T) {
	if err := DefaultParams().Validate(); err != nil {
		t.Fatal(err)
	}
	for _, p := range []Params{
		{Memory: 64, Time: 0, Threads: 1},
		{Memory: 64, Time: 1, Threads: 0},
		{Memory: 15, Time: 1, Threads: 2}, // below 8*p: argon2 would silently use more
		{Memory: 1 << 30, Time: 1, Threads: 1},
	} {
		if p.Validate() == nil {
			t.Errorf("%+v accepted", p)
		}
		if _, err := HashPassword("x", p); err == nil {
			t.Errorf("HashPassword accepted %+v", p)
		}
	}
}

// FuzzParseHash: garbage never panics, and whatever parses re-encodes to
// something that parses to the same thing.
func FuzzParseHash(f *testing.F) {
	good, _ := HashPassword("pw", fastParams)
	f.Add(good)
	for _, s := range malformedHashes {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		h, err := ParseHash(s)
		if err != nil {
			return
		}
		h2, err := ParseHash(h.String())
		if err != nil || h2.String() != h.String() {
			t.Fatalf("round trip of %q failed: %v", s, err)
		}
	})
}

// BenchmarkHashDefault is the cost of one login or registration with the
// default (OWASP) parameters.
func BenchmarkHashDefault(b *testing.B) {
	p := DefaultParams()
	for b.Loop() {
		if _, err := HashPassword("benchmark-password", p); err != nil {
			b.Fatal(err)
		}
	}
}

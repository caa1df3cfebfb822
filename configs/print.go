package configs

import (
	"fmt"
	"io"
	"reflect"
	"strconv"
	"strings"
	"time"
)

// Masked replaces a secret's value in printed configurations.
const Masked = "********"

// IsSecret reports whether key holds a secret that must never be printed
// or logged: a password, a key or a credential. It goes by the key's last
// part, so a new key named like one (nats_password, api_token) is masked
// without anyone remembering to list it. Numbers, durations and file
// names (tls_key, *_file) are not secrets.
func IsSecret(key string) bool {
	if key == "operators" { // name:hash; the hash is offline-guessable
		return true
	}
	var c Config
	if f, ok := lookupKey(&c, key); ok && f.Kind() != reflect.String && f.Type() != stringsType {
		return false // a number or duration such as min_password_length, token_ttl
	}
	last := key[strings.LastIndex(key, ".")+1:]
	if strings.HasSuffix(last, "_file") || strings.HasSuffix(last, "_path") {
		return false // where a secret is, not the secret
	}
	for _, s := range []string{"password", "secret", "token", "credential", "nkey", "seed"} {
		if strings.Contains(last, s) {
			return true
		}
	}
	return false
}

// Shown is key's value as text for logs and messages: Value, or Masked
// for a secret that is set.
func (c *Config) Shown(key string) string {
	v := c.Value(key)
	if IsSecret(key) && v != "" {
		return Masked
	}
	return v
}

// WriteYAML writes c as a YAML config file that Load reads back to the
// same values, one key per line, sections in struct order. Secrets (see
// IsSecret) are written as Masked when set; operators keep their names.
// A value that differs from the built-in default says what the default is.
func (c *Config) WriteYAML(w io.Writer) error {
	d := Default()
	var b strings.Builder
	var open []string // the sections the previous key was in
	walk(reflect.ValueOf(c).Elem(), "", func(key string, f reflect.Value) {
		parts := strings.Split(key, ".")
		sections, name := parts[:len(parts)-1], parts[len(parts)-1]
		same := 0
		for same < len(open) && same < len(sections) && open[same] == sections[same] {
			same++
		}
		for i := same; i < len(sections); i++ {
			fmt.Fprintf(&b, "%s%s:\n", strings.Repeat("  ", i), sections[i])
		}
		open = sections
		indent := strings.Repeat("  ", len(sections))
		val := yamlValue(f)
		if IsSecret(key) {
			val = maskValue(key, f)
		}
		fmt.Fprintf(&b, "%s%s: %s", indent, name, val)
		if def, ok := lookupKey(&d, key); ok && !IsSecret(key) && !reflect.DeepEqual(def.Interface(), f.Interface()) {
			fmt.Fprintf(&b, "  # default %s", oneLine(yamlValue(def)))
		}
		b.WriteByte('\n')
	})
	_, err := io.WriteString(w, b.String())
	return err
}

// yamlValue renders a field as a YAML scalar or flow list. Strings are
// double-quoted with Go escapes, which YAML reads the same way.
func yamlValue(f reflect.Value) string {
	switch {
	case f.Type() == durationType:
		return strconv.Quote(time.Duration(f.Int()).String())
	case f.Type() == stringsType:
		var items []string
		for _, s := range f.Interface().([]string) {
			items = append(items, strconv.Quote(s))
		}
		return "[" + strings.Join(items, ", ") + "]"
	case f.Kind() == reflect.String:
		return strconv.Quote(f.String())
	default:
		return fmt.Sprint(f.Interface())
	}
}

func maskValue(key string, f reflect.Value) string {
	if key == "operators" {
		var items []string
		for _, s := range f.Interface().([]string) {
			name, _, _ := strings.Cut(s, ":")
			items = append(items, strconv.Quote(name+":"+Masked))
		}
		return "[" + strings.Join(items, ", ") + "]"
	}
	if f.Kind() == reflect.String && f.String() == "" {
		return `""` // unset says something useful and gives nothing away
	}
	return strconv.Quote(Masked)
}

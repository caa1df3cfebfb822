package configs

import (
	"errors"
	"fmt"
	"math"
	"reflect"
	"strconv"
	"strings"
	"time"
)

// walk calls fn for every leaf field of the struct v with its dotted key.
func walk(v reflect.Value, prefix string, fn func(key string, f reflect.Value)) {
	t := v.Type()
	for i := range t.NumField() {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("mapstructure"), ",")
		if name == "" || name == "-" {
			continue
		}
		if prefix != "" {
			name = prefix + "." + name
		}
		if f := v.Field(i); f.Kind() == reflect.Struct {
			walk(f, name, fn)
		} else {
			fn(name, f)
		}
	}
}

// lookupKey returns the field of c that key names.
func lookupKey(c *Config, key string) (reflect.Value, bool) {
	var found reflect.Value
	walk(reflect.ValueOf(c).Elem(), "", func(k string, f reflect.Value) {
		if k == key {
			found = f
		}
	})
	return found, found.IsValid()
}

var (
	durationType = reflect.TypeFor[time.Duration]()
	stringsType  = reflect.TypeFor[[]string]()
)

// set stores raw (from YAML, an env var, a flag or a default) into f. It is
// done by hand rather than with viper.Unmarshal so that each error is one
// line naming its key, and so a bare number is not taken as nanoseconds.
func set(f reflect.Value, raw any) error {
	if raw == nil {
		return errors.New("missing value")
	}
	switch {
	case f.Type() == durationType:
		switch x := raw.(type) {
		case time.Duration:
			f.SetInt(int64(x))
		case string:
			d, err := time.ParseDuration(strings.TrimSpace(x))
			if err != nil {
				return fmt.Errorf("not a duration like \"30s\" or \"5m\" (got %q)", x)
			}
			f.SetInt(int64(d))
		default:
			return fmt.Errorf("needs a unit, like \"30s\" or \"5m\" (got %v)", raw)
		}
	case f.Kind() == reflect.String:
		switch x := raw.(type) {
		case string:
			f.SetString(x)
		case bool, int, int64, uint64, float64:
			f.SetString(fmt.Sprint(x))
		default:
			return fmt.Errorf("not a string (got %T)", raw)
		}
	case f.Kind() == reflect.Int:
		n, err := toInt(raw)
		if err != nil {
			return err
		}
		f.SetInt(n)
	case f.Kind() == reflect.Float64:
		x, err := toFloat(raw)
		if err != nil {
			return err
		}
		f.SetFloat(x)
	case f.Kind() == reflect.Bool:
		switch x := raw.(type) {
		case bool:
			f.SetBool(x)
		case string:
			b, err := strconv.ParseBool(strings.TrimSpace(x))
			if err != nil {
				return fmt.Errorf("not true or false (got %q)", x)
			}
			f.SetBool(b)
		default:
			return fmt.Errorf("not true or false (got %v)", raw)
		}
	case f.Type() == stringsType:
		list, err := toStrings(raw)
		if err != nil {
			return err
		}
		f.Set(reflect.ValueOf(list))
	default:
		return fmt.Errorf("unsupported field type %s", f.Type()) // a new Config field needs a case here
	}
	return nil
}

func toInt(raw any) (int64, error) {
	switch x := raw.(type) {
	case int:
		return int64(x), nil
	case int64:
		return x, nil
	case uint64:
		if x <= math.MaxInt64 {
			return int64(x), nil
		}
	case float64:
		if x == math.Trunc(x) && math.Abs(x) < 1<<62 {
			return int64(x), nil
		}
	case string:
		if n, err := strconv.ParseInt(strings.TrimSpace(x), 10, 0); err == nil {
			return n, nil
		}
		return 0, fmt.Errorf("not an integer (got %q)", x)
	}
	return 0, fmt.Errorf("not an integer (got %v)", raw)
}

func toFloat(raw any) (float64, error) {
	switch x := raw.(type) {
	case float64:
		return x, nil
	case int:
		return float64(x), nil
	case int64:
		return float64(x), nil
	case uint64:
		return float64(x), nil
	case string:
		if f, err := strconv.ParseFloat(strings.TrimSpace(x), 64); err == nil {
			return f, nil
		}
		return 0, fmt.Errorf("not a number (got %q)", x)
	}
	return 0, fmt.Errorf("not a number (got %v)", raw)
}

// toStrings reads a list key. YAML gives a list; an environment variable
// or flag gives one string, split on commas ("10.0.0.0/8, fd00::/8"), since
// that is how a list is usually written on one line. Blank items are
// dropped, and an empty list is nil so that it equals the default.
func toStrings(raw any) ([]string, error) {
	var items []string
	switch x := raw.(type) {
	case string:
		items = strings.Split(x, ",")
	case []string:
		items = x
	case []any:
		for i, e := range x {
			s, ok := e.(string)
			if !ok {
				return nil, fmt.Errorf("item %d is not a string (got %v)", i+1, e)
			}
			items = append(items, s)
		}
	default:
		return nil, fmt.Errorf("not a list (got %v); write a YAML list or comma-separated text", raw)
	}
	var out []string
	for _, s := range items {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out, nil
}

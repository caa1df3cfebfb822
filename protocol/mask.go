package protocol

import "strings"

// MatchMask reports whether s matches pattern, where '*' matches any run
// of bytes and '?' any one byte, comparing with the server's casemapping
// (ASCII). It is used for ban masks and WHO masks.
func MatchMask(pattern, s string) bool {
	p, i := 0, 0
	star, mark := -1, 0
	for i < len(s) {
		switch {
		case p < len(pattern) && (pattern[p] == '?' || foldByte(pattern[p]) == foldByte(s[i])):
			p++
			i++
		case p < len(pattern) && pattern[p] == '*':
			star, mark = p, i
			p++
		case star >= 0:
			p = star + 1
			mark++
			i = mark
		default:
			return false
		}
	}
	for p < len(pattern) && pattern[p] == '*' {
		p++
	}
	return p == len(pattern)
}

func foldByte(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}

// CompleteMask completes a ban mask: "bob" -> "bob!*@*", "*@host" ->
// "*!*@host"; "$a:account" extbans stay as they are.
func CompleteMask(mask string) string {
	if strings.HasPrefix(mask, "$a:") {
		return mask
	}
	if !strings.Contains(mask, "!") {
		if strings.Contains(mask, "@") {
			mask = "*!" + mask
		} else {
			mask += "!*@*"
		}
	}
	if !strings.Contains(mask, "@") {
		mask += "@*"
	}
	return mask
}

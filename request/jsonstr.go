package request

import (
	"unicode/utf16"
	"unicode/utf8"
)

// This file holds the JSON string decoding ParseJSON uses: the same
// reading as encoding/json, so that content keys do not change with the
// reader.

// unquote appends the contents of a checked JSON string (without its
// quotes) to dst, unescaped. Invalid UTF-8 and lone surrogate escapes
// become U+FFFD, as with encoding/json; bad reports whether any did.
func unquote(dst, raw []byte) (out []byte, bad bool) {
	for i := 0; i < len(raw); {
		c := raw[i]
		switch {
		case c == '\\':
			esc := raw[i+1]
			i += 2
			switch esc {
			case 'b':
				dst = append(dst, '\b')
			case 'f':
				dst = append(dst, '\f')
			case 'n':
				dst = append(dst, '\n')
			case 'r':
				dst = append(dst, '\r')
			case 't':
				dst = append(dst, '\t')
			case 'u':
				r := hex4(raw[i:])
				i += 4
				if utf16.IsSurrogate(r) {
					if len(raw)-i >= 6 && raw[i] == '\\' && raw[i+1] == 'u' {
						if dec := utf16.DecodeRune(r, hex4(raw[i+2:])); dec != utf8.RuneError {
							dst = utf8.AppendRune(dst, dec)
							i += 6
							continue
						}
					}
					r, bad = utf8.RuneError, true
				}
				dst = utf8.AppendRune(dst, r)
			default: // '"', '\\', '/'
				dst = append(dst, esc)
			}
		case c < utf8.RuneSelf:
			dst = append(dst, c)
			i++
		default:
			r, size := utf8.DecodeRune(raw[i:])
			if r == utf8.RuneError && size == 1 {
				bad = true
			}
			dst = utf8.AppendRune(dst, r)
			i += size
		}
	}
	return dst, bad
}

// hex4 reads four checked hex digits.
func hex4(b []byte) rune {
	var r rune
	for _, c := range b[:4] {
		r = r<<4 | rune(unhex(c))
	}
	return r
}

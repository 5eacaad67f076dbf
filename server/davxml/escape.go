package davxml

import "unicode/utf8"

// AppendEscape appends s to dst escaped as XML character data and returns the extended
// slice. It escapes &, < and > (the double quote is left alone: it only matters inside
// attribute values, and ETags are full of them), writes a carriage return as &#xD; so it
// survives line-end normalisation (XML 1.0 §2.11), and replaces what XML 1.0 cannot carry
// at all (C0 controls other than tab and newline, U+FFFE, U+FFFF, invalid UTF-8) with
// U+FFFD, so the output is always well-formed whatever s holds.
func AppendEscape(dst []byte, s string) []byte {
	return appendEscape(dst, s, false)
}

// plain marks the ASCII bytes that are copied as they are: in text, and in an attribute
// value (where tab and newline must also be escaped or attribute-value normalisation would
// turn them into spaces, XML 1.0 §3.3.3).
var plainText, plainAttr [utf8.RuneSelf]bool

func init() {
	for c := 0x20; c < utf8.RuneSelf; c++ {
		plainText[c] = c != '&' && c != '<' && c != '>'
		plainAttr[c] = plainText[c] && c != '"'
	}
	plainText['\t'] = true
	plainText['\n'] = true
}

func appendEscape(dst []byte, s string, inAttr bool) []byte {
	plain := &plainText
	if inAttr {
		plain = &plainAttr
	}
	last := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if plain[c] {
				i++
				continue
			}
			var esc string
			switch c {
			case '&':
				esc = "&amp;"
			case '<':
				esc = "&lt;"
			case '>':
				esc = "&gt;"
			case '"':
				esc = "&quot;"
			case '\t':
				esc = "&#x9;"
			case '\n':
				esc = "&#xA;"
			case '\r':
				esc = "&#xD;"
			default:
				esc = "\uFFFD"
			}
			dst = append(dst, s[last:i]...)
			dst = append(dst, esc...)
			i++
			last = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 || r == 0xFFFE || r == 0xFFFF {
			dst = append(dst, s[last:i]...)
			dst = append(dst, "\uFFFD"...)
			i += size
			last = i
			continue
		}
		i += size
	}
	return append(dst, s[last:]...)
}

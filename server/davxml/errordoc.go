package davxml

import (
	"fmt"
	"io"
	"slices"
)

// SafedavNS is the namespace of safedav's own elements in DAV:error bodies, written with
// the prefix S.
const SafedavNS = "https://safedav.dev/ns"

// ErrorDoc is the content of a DAV:error response body (RFC 4918 §8.7, §16): the
// precondition or postcondition elements the RFC defines, followed by safedav's own
// machine-readable details.
type ErrorDoc struct {
	// Conditions are trusted, already-serialised condition elements, e.g.
	// `<D:lock-token-submitted><D:href>/a</D:href></D:lock-token-submitted>`.
	Conditions []string
	// Each non-empty field becomes an S: element of the same name: S:code, S:message,
	// S:path, S:etag, S:last-modified, S:request-id. Values are escaped.
	Code, Message, Path, ETag, LastModified, RequestID string
	// Extra holds more S: elements (for example "suggested-name"), written in sorted key
	// order so bodies are reproducible. Keys must be XML names without a colon.
	Extra map[string]string
}

// WriteError writes e as a complete DAV:error document. It fails without writing anything
// if an Extra key is not a valid element name, and otherwise returns w's error.
func WriteError(w io.Writer, e ErrorDoc) error {
	keys := make([]string, 0, len(e.Extra))
	for k := range e.Extra {
		if !isNCName(k) {
			return fmt.Errorf("davxml: invalid element name %q in ErrorDoc.Extra", k)
		}
		keys = append(keys, k)
	}
	slices.Sort(keys)

	b := make([]byte, 0, 512)
	b = append(b, xmlHeader...)
	b = append(b, `<D:error xmlns:D="DAV:" xmlns:S="`+SafedavNS+`">`...)
	for _, c := range e.Conditions {
		b = append(b, c...)
	}
	b = appendS(b, "code", e.Code)
	b = appendS(b, "message", e.Message)
	b = appendS(b, "path", e.Path)
	b = appendS(b, "etag", e.ETag)
	b = appendS(b, "last-modified", e.LastModified)
	b = appendS(b, "request-id", e.RequestID)
	for _, k := range keys {
		b = appendS(b, k, e.Extra[k])
	}
	b = append(b, "</D:error>\n"...)
	_, err := w.Write(b)
	return err
}

func appendS(b []byte, name, value string) []byte {
	if value == "" {
		return b
	}
	b = append(b, "<S:"...)
	b = append(b, name...)
	b = append(b, '>')
	b = AppendEscape(b, value)
	b = append(b, "</S:"...)
	b = append(b, name...)
	return append(b, '>')
}

// isNCName reports whether s is a plain ASCII XML name without a colon. Non-ASCII names
// are refused: the server only ever passes fixed keys, so a stricter check costs nothing.
func isNCName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c == '_':
		case i > 0 && (c >= '0' && c <= '9' || c == '-' || c == '.'):
		default:
			return false
		}
	}
	// Names beginning with "xml" (any case) are reserved (XML 1.0 §2.3).
	return len(s) < 3 || !(s[0]|0x20 == 'x' && s[1]|0x20 == 'm' && s[2]|0x20 == 'l')
}

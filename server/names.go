package server

import (
	"encoding/xml"
	"net/http"
	"net/url"
	"strings"

	"safedav/backend"
)

// nameFromPath turns an escaped URL path into a backend name. It decodes each segment
// on its own so an encoded slash (%2F) cannot join two segments, and lets
// backend.CleanName refuse "..", NUL, backslashes and reserved names.
func nameFromPath(escaped string) (string, error) {
	if !strings.HasPrefix(escaped, "/") {
		return "", errorf(http.StatusBadRequest, "invalid_path", "The path must start with '/'.")
	}
	var b strings.Builder
	for seg := range strings.SplitSeq(escaped, "/") {
		if seg == "" {
			continue
		}
		dec, err := url.PathUnescape(seg)
		if err != nil {
			return "", errorf(http.StatusBadRequest, "invalid_path", "The path has a malformed percent-encoding.")
		}
		if strings.Contains(dec, "/") {
			return "", errorf(http.StatusBadRequest, "invalid_path", "The path has an encoded slash (%2F) inside a name; names cannot contain '/'.")
		}
		b.WriteByte('/')
		b.WriteString(dec)
	}
	name, err := backend.CleanName(b.String())
	if err != nil {
		return "", &Error{Status: http.StatusBadRequest, Code: "invalid_name",
			Message: "This name is not allowed: it has a control character, a backslash, a '..' segment or a reserved name. Pick another name.", Err: err}
	}
	return name, nil
}

// requestName is the request's backend name, or "/" when the path is invalid (for
// error bodies only).
func requestName(r *http.Request) string {
	name, err := nameFromPath(r.URL.EscapedPath())
	if err != nil {
		return "/"
	}
	return name
}

// targetName is the backend name a handler works on.
func targetName(r *http.Request) (string, error) { return nameFromPath(r.URL.EscapedPath()) }

// href is the percent-encoded path of name, with a trailing slash for a collection
// (RFC 4918 §8.3: hrefs of collections should end in '/').
func (s *Server) href(name string, dir bool) string {
	if name == "/" {
		return "/"
	}
	var b strings.Builder
	b.Grow(len(name) + 16)
	for seg := range strings.SplitSeq(name[1:], "/") {
		b.WriteByte('/')
		b.WriteString(escapeSegment(seg))
	}
	if dir {
		b.WriteByte('/')
	}
	return b.String()
}

// escapeSegment percent-encodes one path segment. url.PathEscape leaves characters
// such as '&', '+' and '=' that are legal in a path; it escapes everything else.
func escapeSegment(seg string) string {
	for i := 0; i < len(seg); i++ {
		c := seg[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '.' || c == '_' || c == '~') {
			return url.PathEscape(seg)
		}
	}
	return seg
}

// urlName maps a URL as a client wrote it in Destination or in an If header tag —
// absolute ("https://host/a/b") or a bare path — to a backend name. Only the path is
// compared, so COPY and MOVE work behind a TLS-terminating reverse proxy whose public
// scheme and host differ from ours.
func urlName(raw string) (string, error) {
	if raw == "" {
		return "", errorf(http.StatusBadRequest, "invalid_destination", "The Destination header is missing.")
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "" && u.Scheme != "http" && u.Scheme != "https") {
		return "", errorf(http.StatusBadRequest, "invalid_destination", "The Destination header is not a valid http(s) URL or absolute path.")
	}
	p := u.EscapedPath()
	if p == "" {
		p = "/"
	}
	return nameFromPath(p)
}

// xmlText escapes s for XML character data.
func xmlText(s string) string {
	if !strings.ContainsAny(s, "&<>\"'") {
		return s
	}
	var b strings.Builder
	_ = xml.EscapeText(&b, []byte(s))
	return b.String()
}

package server

import (
	"encoding/xml"
	"net/http"
	"net/url"
	"strings"

	"safedav/backend"
	"safedav/server/auth"
)

// nameFromPath turns an escaped URL path into a backend name. It decodes each segment
// on its own so an encoded slash (%2F) cannot join two segments, and lets
// backend.CleanName refuse "..", NUL, backslashes and reserved names.
func nameFromPath(escaped string) (string, error) {
	if !strings.HasPrefix(escaped, "/") {
		return "", errorf(http.StatusBadRequest, "invalid_path", "The path must start with '/'.")
	}
	if strings.IndexByte(escaped, '%') < 0 {
		// Nothing to decode: CleanName drops the empty segments as the loop below does.
		return backend.CleanName(escaped)
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
	// An invalid name is backend.ErrInvalidName, which toError answers with 400.
	return backend.CleanName(b.String())
}

// requestName is the request's name as the user sees it, or "/" when the path is
// invalid (for error bodies only).
func (s *Server) requestName(r *http.Request) string {
	name, err := nameFromPath(r.URL.EscapedPath())
	if err != nil {
		return "/"
	}
	return name
}

// targetName is the storage name a handler works on: the request path inside the
// user's root.
func (s *Server) targetName(r *http.Request) (string, error) {
	name, err := nameFromPath(r.URL.EscapedPath())
	if err != nil {
		return "", err
	}
	return s.storageName(r, name)
}

// storageName maps a name as the user sees it ("/" is their root) to the storage name.
func (s *Server) storageName(r *http.Request, name string) (string, error) {
	u := stateOf(r).user
	if u == nil {
		return name, nil
	}
	st, err := auth.MapName(u, name)
	if err != nil {
		return "", &Error{Status: http.StatusBadRequest, Code: "invalid_name",
			Message: "This name is not allowed.", Err: err}
	}
	return st, nil
}

// userName maps a storage name back to the name the user sees.
func (s *Server) userName(r *http.Request, storage string) string {
	u := stateOf(r).user
	if u == nil {
		return storage
	}
	name, ok := auth.UnmapName(u, storage)
	if !ok {
		return "/"
	}
	return name
}

// href is the percent-encoded path the user sees for the storage name, with a
// trailing slash for a collection (RFC 4918 §8.3: hrefs of collections should end in
// '/').
func (s *Server) href(r *http.Request, storage string, dir bool) string {
	name := s.userName(r, storage)
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
func (s *Server) urlName(r *http.Request, raw string) (string, error) {
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
	name, err := nameFromPath(p)
	if err != nil {
		return "", err
	}
	return s.storageName(r, name)
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

package server

import (
	"context"
	"errors"
	"math"
	"net/http"
	"strconv"
	"strings"

	"safedav/backend"
	"safedav/server/auth"
)

// Anonymous is what a request without credentials may do when no users are configured.
type Anonymous int

// Anonymous access levels.
const (
	AnonymousReadWrite Anonymous = iota // the default on a loopback address
	AnonymousReadOnly
)

// authenticate is the auth middleware (docs/design.md, "The flow of a request"): with a
// users file, every request needs Basic credentials; failed logins are rate-limited per
// client address.
func (s *Server) authenticate(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.cfg.Users == nil {
			next.ServeHTTP(w, r)
			return
		}
		if ok, wait := s.cfg.Limiter.Allow(r.RemoteAddr); !ok {
			secs := strconv.Itoa(int(math.Ceil(wait.Seconds())))
			s.log.Warn("login rate limited", "remote", r.RemoteAddr, "request_id", stateOf(r).id)
			s.writeError(w, r, &Error{Status: http.StatusTooManyRequests, Code: "too_many_failed_logins",
				Message: "Too many failed logins from your address. Wait " + secs + " seconds, then try again with the right password.",
				Header:  http.Header{"Retry-After": {secs}}})
			return
		}
		name, pass, ok := r.BasicAuth()
		var u *auth.User
		if ok {
			u, ok = s.cfg.Users.Authenticate(name, pass)
			if !ok {
				s.cfg.Limiter.Fail(r.RemoteAddr)
				s.log.Warn("login failed", "user", name, "remote", r.RemoteAddr, "request_id", stateOf(r).id)
			}
		}
		if !ok {
			s.writeError(w, r, &Error{Status: http.StatusUnauthorized, Code: "unauthorized",
				Message: "Log in with your user name and password.",
				Header:  http.Header{"Www-Authenticate": {`Basic realm="` + strings.ReplaceAll(s.cfg.Realm, `"`, "'") + `", charset="UTF-8"`}}})
			return
		}
		st := stateOf(r)
		st.user, st.principal = u, u.Name
		if err := s.ensureRoot(r.Context(), u.Root); err != nil {
			s.writeError(w, r, err)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// ensureRoot creates a user's root collection (and its parents) on first use.
func (s *Server) ensureRoot(ctx context.Context, root string) error {
	// One stat per request: a root deleted by an administrator comes back on the
	// user's next request.
	if _, err := s.b.Stat(ctx, root); err == nil {
		return nil
	}
	var chain []string
	for n := root; n != "/"; n = backend.Parent(n) {
		chain = append(chain, n)
	}
	for i := len(chain) - 1; i >= 0; i-- {
		if _, err := s.b.Mkdir(ctx, chain[i], backend.Cond{}); err != nil && !errors.Is(err, backend.ErrExist) {
			return err
		}
	}
	return nil
}

// writeMethods change the store; a read-only user or path refuses them.
var writeMethods = map[string]bool{
	http.MethodPut: true, http.MethodDelete: true, "MKCOL": true, "PROPPATCH": true,
	"LOCK": true, "UNLOCK": true, "MOVE": true,
}

// authorize refuses writes the user's permissions do not allow (403 read_only). Reads
// are allowed everywhere inside the user's root, which MapName guarantees.
func (s *Server) authorize(r *http.Request) error {
	st := stateOf(r)
	write := writeMethods[r.Method]
	copyMove := r.Method == "COPY" || r.Method == "MOVE"
	if !write && !copyMove {
		return nil
	}
	if st.user == nil {
		if s.cfg.Users == nil && s.cfg.Anonymous == AnonymousReadOnly {
			return readOnly("This server is read-only for anonymous access.")
		}
		return nil
	}
	name, err := nameFromPath(r.URL.EscapedPath())
	if err != nil {
		return err
	}
	// DELETE and MOVE remove the whole subtree: no read-only rule may lie below.
	tree := r.Method == http.MethodDelete || r.Method == "MOVE"
	if write && (tree && !st.user.AllowedTree(name, true) || !tree && !st.user.Allowed(name, true)) {
		return readOnly("You have read-only access to " + name + ".")
	}
	if copyMove {
		dst, err := s.urlName(r, r.Header.Get("Destination"))
		if err != nil {
			return err
		}
		// The destination may be replaced as a whole.
		if !st.user.AllowedTree(s.userName(r, dst), true) {
			return readOnly("You have read-only access to the destination " + s.userName(r, dst) + ".")
		}
	}
	return nil
}

func readOnly(msg string) *Error {
	return &Error{Status: http.StatusForbidden, Code: "read_only", Message: msg + " Ask the administrator for write access."}
}

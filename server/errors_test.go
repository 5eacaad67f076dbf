package server

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"

	"safedav/backend"
)

// A namespace claim not had in time (backend.ErrBusy, however wrapped) is a 409 the
// client may retry: namespace_busy with Retry-After.
func TestErrBusy(t *testing.T) {
	var s Server
	r := httptest.NewRequest("MOVE", "/a", nil)
	e := s.toError(r, fmt.Errorf("%w: claims: namespace busy", backend.ErrBusy))
	if e.Status != http.StatusConflict || e.Code != "namespace_busy" || e.Header.Get("Retry-After") == "" {
		t.Errorf("got %d %s %v", e.Status, e.Code, e.Header)
	}
}

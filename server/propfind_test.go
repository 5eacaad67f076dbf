package server

import (
	"net/http"
	"strings"
	"testing"

	"safedav/backend"
	"safedav/backend/local"
	"safedav/locks"
)

// propsNoLister is a store that keeps dead properties but cannot list them with the
// members of a folder (as S3 cannot): PROPFIND must then read them per member.
type propsNoLister struct {
	backend.Backend
	backend.PropStore
}

func TestPropfindDeadPropsWithoutLister(t *testing.T) {
	store, err := local.New(t.TempDir(), local.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	lm, err := locks.NewManager(locks.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ts := startServer(t, Config{Backend: propsNoLister{store, store}, Locks: lm})
	ts.do("PUT", "/f", nil, "x").must(t, http.StatusCreated)
	ts.do("PROPPATCH", "/f", nil, `<?xml version="1.0"?><D:propertyupdate xmlns:D="DAV:" xmlns:Z="urn:z"><D:set><D:prop><Z:color>red</Z:color></D:prop></D:set></D:propertyupdate>`).must(t, http.StatusMultiStatus)
	for _, depth := range []string{"0", "1"} {
		target := map[string]string{"0": "/f", "1": "/"}[depth]
		for _, body := range []string{
			`<?xml version="1.0"?><D:propfind xmlns:D="DAV:" xmlns:Z="urn:z"><D:prop><Z:color/></D:prop></D:propfind>`,
			`<?xml version="1.0"?><D:propfind xmlns:D="DAV:"><D:allprop/></D:propfind>`,
		} {
			r := ts.do("PROPFIND", target, map[string]string{"Depth": depth}, body).must(t, http.StatusMultiStatus)
			if !strings.Contains(r.body, ">red<") {
				t.Errorf("Depth %s, %s: the dead property is missing:\n%s", depth, body[40:70], r.body)
			}
		}
	}
}

package server

import (
	"fmt"
	"html"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"safedav/backend"
	"safedav/backend/local"
	"safedav/coord"
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
	ts := startServer(t, Config{Backend: propsNoLister{store, store}, Locks: coord.LocalLocks(lm)})
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

// TestPropfindKeptListing lists a folder large enough for the backend to keep its
// listing, then changes it over HTTP and behind safedav's back: every PROPFIND shows
// what is on disk, with the ETags the writes returned and the locks now held.
func TestPropfindKeptListing(t *testing.T) {
	ts := newTestServer(t)
	dir := filepath.Join(ts.root, "big")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for i := range 600 {
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("m%03d.txt", i)), []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	allprop := `<?xml version="1.0"?><D:propfind xmlns:D="DAV:"><D:allprop/></D:propfind>`
	list := func() string {
		return ts.do("PROPFIND", "/big/", map[string]string{"Depth": "1"}, allprop).must(t, http.StatusMultiStatus).body
	}
	member := func(body, name string) string { // the <response> of one member
		i := strings.Index(body, "<D:href>/big/"+name+"</D:href>")
		if i < 0 {
			t.Fatalf("%s not listed", name)
		}
		return body[i : i+strings.Index(body[i:], "</D:response>")]
	}
	etag := func(body, name string) string {
		r := member(body, name)
		i := strings.Index(r, "<D:getetag>")
		return html.UnescapeString(r[i+len("<D:getetag>") : i+strings.Index(r[i:], "</D:getetag>")])
	}
	first := list()
	// Members come in no particular order.
	sorted := func(body string) []string {
		rs := strings.Split(strings.TrimSuffix(strings.TrimSpace(body), "</D:multistatus>"), "<D:response>")
		slices.Sort(rs)
		return rs
	}
	for range 2 {
		if again := list(); !slices.Equal(sorted(again), sorted(first)) {
			t.Fatal("an unchanged folder listed differently")
		}
	}

	put := ts.do("PUT", "/big/m001.txt", map[string]string{"If-Match": etag(first, "m001.txt")}, "new content").must(t, http.StatusNoContent)
	got := list()
	if e := etag(got, "m001.txt"); e != put.Header.Get("ETag") {
		t.Errorf("after PUT: listed ETag %s, PUT returned %s", e, put.Header.Get("ETag"))
	}

	if err := os.WriteFile(filepath.Join(dir, "m002.txt"), []byte("changed on disk"), 0o644); err != nil {
		t.Fatal(err)
	}
	got = list()
	if !strings.Contains(member(got, "m002.txt"), "<D:getcontentlength>15</D:getcontentlength>") {
		t.Errorf("a change on disk is not listed: %s", member(got, "m002.txt"))
	}
	// The listed ETag is the file's: a conditional write with it succeeds.
	ts.do("PUT", "/big/m002.txt", map[string]string{"If-Match": etag(got, "m002.txt")}, "y").must(t, http.StatusNoContent)

	lock := ts.do("LOCK", "/big/m003.txt", nil, `<?xml version="1.0"?><D:lockinfo xmlns:D="DAV:"><D:lockscope><D:exclusive/></D:lockscope><D:locktype><D:write/></D:locktype></D:lockinfo>`).must(t, http.StatusOK)
	got = list()
	if tok := lock.Header.Get("Lock-Token"); !strings.Contains(member(got, "m003.txt"), strings.Trim(tok, "<>")) {
		t.Errorf("the new lock %s is not in the listing: %s", tok, member(got, "m003.txt"))
	}
}

package server

import (
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Preconditions on every write method, case by case (RFC 9110 §13, RFC 4918 §10.4).
func TestWritePreconditions(t *testing.T) {
	ts := newTestServer(t)
	etag := ts.do("PUT", "/f.txt", nil, "v1").must(t, http.StatusCreated).Header.Get("ETag")
	ts.do("MKCOL", "/d", nil, "").must(t, http.StatusCreated)
	stale := `"stale"`
	past := time.Now().Add(-time.Hour).UTC().Format(http.TimeFormat)
	future := time.Now().Add(time.Hour).UTC().Format(http.TimeFormat)
	tests := []struct {
		name   string
		method string
		path   string
		hdr    map[string]string
		body   string
		want   int
		code   string
	}{
		{"put_if_match_stale [RFC9110 13.1.1]", "PUT", "/f.txt", map[string]string{"If-Match": stale}, "x", 412, "version_conflict"},
		{"put_if_match_list_stale", "PUT", "/f.txt", map[string]string{"If-Match": `"a", "b"`}, "x", 412, "version_conflict"},
		{"put_if_match_star_missing [RFC9110 13.1.1]", "PUT", "/missing.txt", map[string]string{"If-Match": "*"}, "x", 412, "precondition_failed"},
		{"put_if_none_match_star_exists [RFC9110 13.1.2]", "PUT", "/f.txt", map[string]string{"If-None-Match": "*"}, "x", 412, "precondition_failed"},
		{"put_if_none_match_etag_exists", "PUT", "/f.txt", map[string]string{"If-None-Match": etag}, "x", 412, "precondition_failed"},
		{"put_if_unmodified_since_past [RFC9110 13.1.4]", "PUT", "/f.txt", map[string]string{"If-Unmodified-Since": past}, "x", 412, "version_conflict"},
		{"put_if_header_etag_stale [RFC4918 10.4]", "PUT", "/f.txt", map[string]string{"If": `([` + stale + `])`}, "x", 412, "version_conflict"},
		{"put_if_header_not_etag [RFC4918 10.4.5]", "PUT", "/f.txt", map[string]string{"If": `(Not [` + etag + `])`}, "x", 412, "version_conflict"},
		{"delete_if_match_stale", "DELETE", "/f.txt", map[string]string{"If-Match": stale}, "", 412, "version_conflict"},
		{"proppatch_if_match_stale", "PROPPATCH", "/f.txt", map[string]string{"If-Match": stale}, proppatchBody, 412, "version_conflict"},
		{"mkcol_if_match_star", "MKCOL", "/newdir", map[string]string{"If-Match": "*"}, "", 412, "precondition_failed"},
		{"copy_dest_if_match_stale", "COPY", "/f.txt", map[string]string{"Destination": "/d/f.txt", "If-None-Match": "*", "Overwrite": "T"}, "", 201, ""},
		{"copy_dest_if_none_match_star_exists", "COPY", "/f.txt", map[string]string{"Destination": "/d/f.txt", "If-None-Match": "*"}, "", 412, "precondition_failed"},
		{"move_dest_if_match_stale", "MOVE", "/f.txt", map[string]string{"Destination": "/d/f.txt", "If-Match": stale}, "", 412, "version_conflict"},
		{"lock_if_match_stale", "LOCK", "/f.txt", map[string]string{"If-Match": stale}, lockBody, 412, "version_conflict"},
		{"malformed_if_match [RFC9110 8.8.3]", "PUT", "/f.txt", map[string]string{"If-Match": `no-quotes`}, "x", 400, "bad_condition_header"},
		{"malformed_if_header [RFC4918 10.4]", "PUT", "/f.txt", map[string]string{"If": `(<unclosed`}, "x", 400, "bad_condition_header"},
		{"put_if_unmodified_since_future_passes", "PUT", "/f.txt", map[string]string{"If-Unmodified-Since": future, "If-Match": etag}, "v2", 204, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := ts.do(tt.method, tt.path, tt.hdr, tt.body).must(t, tt.want)
			if tt.code == "" {
				return
			}
			e := r.davError(t)
			if e.Code != tt.code {
				t.Fatalf("code %q, want %q", e.Code, tt.code)
			}
			if tt.code == "version_conflict" {
				p := tt.path
				if d := tt.hdr["Destination"]; d != "" {
					p = d // COPY and MOVE conditions are about the destination
				}
				cur := ts.do("HEAD", p, nil, "").Header.Get("ETag")
				if e.ETag != cur || r.Header.Get("ETag") != cur {
					t.Fatalf("412 shares ETag %q (header %q), current is %q", e.ETag, r.Header.Get("ETag"), cur)
				}
			}
		})
	}
	// Nothing above changed f.txt except the one passing PUT.
	if g := ts.do("GET", "/f.txt", nil, "").must(t, http.StatusOK); g.body != "v2" {
		t.Fatalf("f.txt = %q after refused writes", g.body)
	}
}

const proppatchBody = `<?xml version="1.0"?><D:propertyupdate xmlns:D="DAV:"><D:set><D:prop><x:a xmlns:x="urn:x">1</x:a></D:prop></D:set></D:propertyupdate>`

const lockBody = `<?xml version="1.0"?><D:lockinfo xmlns:D="DAV:"><D:lockscope><D:exclusive/></D:lockscope><D:locktype><D:write/></D:locktype><D:owner>test</D:owner></D:lockinfo>`

func TestReadPreconditions(t *testing.T) {
	ts := newTestServer(t)
	r := ts.do("PUT", "/g.txt", nil, "hello").must(t, http.StatusCreated)
	etag, lm := r.Header.Get("ETag"), r.Header.Get("Last-Modified")
	ts.do("GET", "/g.txt", map[string]string{"If-None-Match": etag}, "").must(t, http.StatusNotModified)
	ts.do("GET", "/g.txt", map[string]string{"If-Modified-Since": lm}, "").must(t, http.StatusNotModified)
	ts.do("HEAD", "/g.txt", map[string]string{"If-None-Match": etag}, "").must(t, http.StatusNotModified)
	ts.do("GET", "/g.txt", map[string]string{"If-Match": `"other"`}, "").must(t, http.StatusPreconditionFailed)
	ts.do("GET", "/g.txt", map[string]string{"If-Match": etag}, "").must(t, http.StatusOK)
	if g := ts.do("GET", "/g.txt", map[string]string{"Range": "bytes=1-3"}, "").must(t, http.StatusPartialContent); g.body != "ell" {
		t.Fatalf("Range body %q", g.body)
	}
}

// 32 clients do read-modify-write with If-Match on 10 files: every file's final
// counter equals the number of writes acknowledged for it (no lost update), and every
// refused write got a 412.
func TestNoLostUpdate(t *testing.T) {
	dur := 10 * time.Second
	if testing.Short() {
		dur = 2 * time.Second
	}
	ts := newTestServer(t)
	noLostUpdate(t, []*testServer{ts}, dur)
}

// noLostUpdate runs the read-modify-write race; client c talks to servers[c%len], so
// with several servers on one store it checks that they cannot lose each other's
// updates either.
func noLostUpdate(t *testing.T, servers []*testServer, dur time.Duration) {
	ts := servers[0]
	const files, clients = 10, 32
	for i := range files {
		ts.do("PUT", fmt.Sprintf("/c%d", i), nil, "0").must(t, http.StatusCreated)
	}
	var acked [files]atomic.Int64
	var refused, other atomic.Int64
	deadline := time.Now().Add(dur)
	var wg sync.WaitGroup
	for c := range clients {
		wg.Go(func() {
			client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4}}
			for i := c; time.Now().Before(deadline); i++ {
				f := i % files
				u := fmt.Sprintf("%s/c%d", servers[c%len(servers)].URL, f)
				resp, err := client.Get(u)
				if err != nil {
					other.Add(1)
					continue
				}
				var buf [32]byte
				n, _ := resp.Body.Read(buf[:])
				resp.Body.Close()
				v, _ := strconv.Atoi(string(buf[:n]))
				req, _ := http.NewRequest("PUT", u, stringsReader(strconv.Itoa(v+1)))
				req.Header.Set("If-Match", resp.Header.Get("ETag"))
				resp, err = client.Do(req)
				if err != nil {
					other.Add(1)
					continue
				}
				resp.Body.Close()
				switch resp.StatusCode {
				case http.StatusNoContent:
					acked[f].Add(1)
				case http.StatusPreconditionFailed:
					refused.Add(1)
				default:
					other.Add(1)
					t.Errorf("PUT answered %d", resp.StatusCode)
				}
			}
		})
	}
	wg.Wait()
	total := int64(0)
	for f := range files {
		g := ts.do("GET", fmt.Sprintf("/c%d", f), nil, "").must(t, http.StatusOK)
		v, _ := strconv.Atoi(g.body)
		if int64(v) != acked[f].Load() {
			t.Errorf("file %d: counter %d but %d writes were acknowledged: lost updates", f, v, acked[f].Load())
		}
		total += acked[f].Load()
	}
	if other.Load() != 0 {
		t.Errorf("%d requests neither succeeded nor got 412", other.Load())
	}
	if total == 0 || refused.Load() == 0 {
		t.Fatalf("the test did not exercise conflicts: %d acked, %d refused", total, refused.Load())
	}
	t.Logf("%d writes acknowledged, %d refused with 412, in %v", total, refused.Load(), dur)
}

// Exactly one of N concurrent create-only uploads wins; the others get 412.
func TestCreateOnlyRace(t *testing.T) {
	createOnlyRace(t, []*testServer{newTestServer(t)})
}

func createOnlyRace(t *testing.T, servers []*testServer) {
	const n = 40
	for round := range 5 {
		path := fmt.Sprintf("/race%d.txt", round)
		var created, refused atomic.Int64
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i := range n {
			wg.Go(func() {
				ts := servers[i%len(servers)]
				req, _ := http.NewRequest("PUT", ts.URL+path, stringsReader(fmt.Sprint("writer ", i)))
				req.Header.Set("If-None-Match", "*")
				<-start
				resp, err := ts.Client().Do(req)
				if err != nil {
					t.Error(err)
					return
				}
				resp.Body.Close()
				switch resp.StatusCode {
				case http.StatusCreated:
					created.Add(1)
				case http.StatusPreconditionFailed, http.StatusConflict: // 409: the winner's upload was still in flight
					refused.Add(1)
				default:
					t.Errorf("create-only PUT answered %d", resp.StatusCode)
				}
			})
		}
		close(start)
		wg.Wait()
		if created.Load() != 1 || refused.Load() != n-1 {
			t.Fatalf("round %d: %d created, %d refused; want exactly 1 winner", round, created.Load(), refused.Load())
		}
	}
}

// lastModified's cache answers as formatting does, also for seconds that share a slot.
func TestLastModifiedCache(t *testing.T) {
	base := time.Date(2026, 12, 3, 15, 4, 5, 0, time.FixedZone("X", 3600))
	for _, d := range []time.Duration{0, 0, 999 * time.Millisecond, time.Second, 64 * time.Second, 0, 128 * time.Second, -time.Hour, 64 * time.Second} {
		tm := base.Add(d)
		if got, want := lastModified(tm), tm.UTC().Format(http.TimeFormat); got != want {
			t.Errorf("lastModified(%v) = %q, want %q", tm, got, want)
		}
	}
}

package server

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
)

// The namespace races of backendtest (issue 20) end to end, over HTTP on every
// backend, fewer rounds: a write and a MOVE or DELETE sent together must end in a
// state one order of the two explains, and the answers must say which.

const e2eRaceRounds = 15

// status sends one request from a goroutine (no t.Fatal there) and returns its status.
func (ts *testServer) status(method, path string, hdr map[string]string, body string) int {
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, ts.URL+path, rd)
	if err != nil {
		return -1
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := ts.Client().Do(req)
	if err != nil {
		return -1
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// together runs a and b at once and returns their statuses.
func together(a, b func() int) (int, int) {
	start := make(chan struct{})
	var sa, sb int
	var wg sync.WaitGroup
	wg.Go(func() { <-start; sa = a() })
	wg.Go(func() { <-start; sb = b() })
	close(start)
	wg.Wait()
	return sa, sb
}

// get returns the status of a GET of path and its body.
func (ts *testServer) get(path string) (int, string) {
	resp, err := ts.Client().Get(ts.URL + path)
	if err != nil {
		return -1, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestRaceMoveFileVsPutSource(t *testing.T) {
	eachBackend(t, func(t *testing.T, ts *testServer) {
		for i := range e2eRaceRounds {
			d := fmt.Sprintf("/r%d", i)
			ts.do("MKCOL", d, nil, "").must(t, http.StatusCreated)
			ts.do("PUT", d+"/x.bin", nil, "old").must(t, http.StatusCreated)
			mv, put := together(
				func() int { return ts.status("MOVE", d+"/x.bin", map[string]string{"Destination": d + "/y.bin"}, "") },
				func() int { return ts.status("PUT", d+"/x.bin", nil, "new") })
			if mv != http.StatusCreated || (put != http.StatusNoContent && put != http.StatusCreated) {
				t.Fatalf("round %d: MOVE %d, PUT %d", i, mv, put)
			}
			xs, x := ts.get(d + "/x.bin")
			_, y := ts.get(d + "/y.bin")
			switch {
			case put == http.StatusNoContent && xs == http.StatusNotFound && y == "new": // PUT, then MOVE
			case put == http.StatusCreated && x == "new" && y == "old": // MOVE, then PUT
			default:
				t.Fatalf("round %d: PUT %d, then x.bin %d %q, y.bin %q: no order explains it", i, put, xs, x, y)
			}
		}
	})
}

func TestRaceMoveFolderVsPutInto(t *testing.T) {
	eachBackend(t, func(t *testing.T, ts *testServer) {
		for i := range e2eRaceRounds {
			d := fmt.Sprintf("/r%d", i)
			ts.do("MKCOL", d, nil, "").must(t, http.StatusCreated)
			ts.do("MKCOL", d+"/src", nil, "").must(t, http.StatusCreated)
			mv, put := together(
				func() int { return ts.status("MOVE", d+"/src/", map[string]string{"Destination": d + "/dst/"}, "") },
				func() int { return ts.status("PUT", d+"/src/new.txt", nil, "new") })
			ns, n := ts.get(d + "/dst/new.txt")
			switch {
			case mv != http.StatusCreated:
				t.Fatalf("round %d: MOVE %d", i, mv)
			case put == http.StatusCreated && ns == http.StatusOK && n == "new": // PUT, then MOVE
			case put == http.StatusConflict && ns == http.StatusNotFound: // MOVE, then PUT: parent_missing
			default:
				t.Fatalf("round %d: PUT %d, then dst/new.txt %d %q: no order explains it", i, put, ns, n)
			}
			if s, _ := ts.get(d + "/src/new.txt"); s != http.StatusNotFound {
				t.Fatalf("round %d: src/new.txt %d after the MOVE", i, s)
			}
		}
	})
}

func TestRaceDeleteFolderVsPutInto(t *testing.T) {
	eachBackend(t, func(t *testing.T, ts *testServer) {
		for i := range e2eRaceRounds {
			d := fmt.Sprintf("/r%d", i)
			ts.do("MKCOL", d, nil, "").must(t, http.StatusCreated)
			ts.do("MKCOL", d+"/src", nil, "").must(t, http.StatusCreated)
			del, put := together(
				func() int { return ts.status("DELETE", d+"/src/", nil, "") },
				func() int { return ts.status("PUT", d+"/src/new.txt", nil, "new") })
			if del != http.StatusNoContent || (put != http.StatusCreated && put != http.StatusConflict) {
				t.Fatalf("round %d: DELETE %d, PUT %d", i, del, put)
			}
			if s, _ := ts.get(d + "/src/new.txt"); s != http.StatusNotFound {
				t.Fatalf("round %d: DELETE answered 204 but src/new.txt is %d", i, s)
			}
		}
	})
}

func TestRaceTwoMovesOfOneFile(t *testing.T) {
	eachBackend(t, func(t *testing.T, ts *testServer) {
		for i := range e2eRaceRounds {
			d := fmt.Sprintf("/r%d", i)
			ts.do("MKCOL", d, nil, "").must(t, http.StatusCreated)
			ts.do("PUT", d+"/x.bin", nil, "x").must(t, http.StatusCreated)
			a, b := together(
				func() int { return ts.status("MOVE", d+"/x.bin", map[string]string{"Destination": d + "/y.bin"}, "") },
				func() int { return ts.status("MOVE", d+"/x.bin", map[string]string{"Destination": d + "/z.bin"}, "") })
			lost := func(s int) bool { return s == http.StatusNotFound || s == http.StatusPreconditionFailed }
			ys, _ := ts.get(d + "/y.bin")
			zs, _ := ts.get(d + "/z.bin")
			switch {
			case a == http.StatusCreated && lost(b) && ys == 200 && zs == 404:
			case b == http.StatusCreated && lost(a) && ys == 404 && zs == 200:
			default:
				t.Fatalf("round %d: MOVEs %d and %d, then y.bin %d, z.bin %d: no order explains it", i, a, b, ys, zs)
			}
		}
	})
}

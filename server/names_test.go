package server

import (
	"encoding/xml"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"safedav/backend"
)

// multistatus is enough of a 207 body to read hrefs and properties.
type multistatus struct {
	Responses []struct {
		Href     string `xml:"DAV: href"`
		Propstat []struct {
			Status string `xml:"DAV: status"`
			Prop   struct {
				Inner []byte `xml:",innerxml"`
			} `xml:"DAV: prop"`
		} `xml:"DAV: propstat"`
	} `xml:"DAV: response"`
}

func (r result) multistatus(t *testing.T) multistatus {
	t.Helper()
	var ms multistatus
	if err := xml.Unmarshal([]byte(r.body), &ms); err != nil {
		t.Fatalf("207 body is not XML: %v\n%s", err, r.body)
	}
	return ms
}

// Every name a user may type round-trips through PUT, PROPFIND, GET, COPY and MOVE
// with correct percent-encoding.
func TestNamesRoundTrip(t *testing.T) {
	names := []string{
		"with space.txt", "hash#tag.txt", "percent%20lit.txt", "question?.txt", "amp&and.txt",
		"plus+sign.txt", "quote'single.txt", `quote"double.txt`, "emoji😀.txt", "café.txt",
		"日本語.txt", "semi;colon.txt", "equals=.txt", "[brackets].txt", "at@sign.txt",
	}
	ts := newTestServer(t)
	ts.do("MKCOL", "/d", nil, "").must(t, http.StatusCreated)
	for _, n := range names {
		t.Run(n, func(t *testing.T) {
			p := "/d/" + escapeSegment(n)
			ts.do("PUT", p, nil, "content of "+n).must(t, http.StatusCreated)
			if g := ts.do("GET", p, nil, "").must(t, http.StatusOK); g.body != "content of "+n {
				t.Fatalf("GET body %q", g.body)
			}
			ms := ts.do("PROPFIND", p, map[string]string{"Depth": "0"}, "").must(t, http.StatusMultiStatus).multistatus(t)
			if len(ms.Responses) != 1 || ms.Responses[0].Href != p {
				t.Fatalf("PROPFIND href %+v, want %q", ms.Responses, p)
			}
			cp := "/d/" + escapeSegment("copy of "+n)
			ts.do("COPY", p, map[string]string{"Destination": ts.URL + cp}, "").must(t, http.StatusCreated)
			mv := "/d/" + escapeSegment("moved "+n)
			ts.do("MOVE", cp, map[string]string{"Destination": mv}, "").must(t, http.StatusCreated)
			if g := ts.do("GET", mv, nil, "").must(t, http.StatusOK); g.body != "content of "+n {
				t.Fatalf("GET after MOVE %q", g.body)
			}
		})
	}
	// The listing names every file exactly once, encoded.
	ms := ts.do("PROPFIND", "/d/", map[string]string{"Depth": "1"}, "").must(t, http.StatusMultiStatus).multistatus(t)
	if len(ms.Responses) != 1+2*len(names) {
		t.Fatalf("listing has %d entries, want %d", len(ms.Responses), 1+2*len(names))
	}
}

// A name sent in NFD (macOS) finds a file stored in NFC and the reverse.
func TestUnicodeNormalization(t *testing.T) {
	ts := newTestServer(t)
	nfd := "/" + escapeSegment("cafe\u0301.txt")
	nfc := "/" + escapeSegment("caf\u00e9.txt")
	ts.do("PUT", nfd, nil, "accent").must(t, http.StatusCreated)
	if g := ts.do("GET", nfc, nil, "").must(t, http.StatusOK); g.body != "accent" {
		t.Fatalf("GET NFC = %q", g.body)
	}
	ts.do("PUT", nfc, nil, "again").must(t, http.StatusNoContent)
	if g := ts.do("GET", nfd, nil, "").must(t, http.StatusOK); g.body != "again" {
		t.Fatalf("GET NFD = %q", g.body)
	}
	// A file put on disk in NFD by another program is found in NFC too.
	if err := os.WriteFile(filepath.Join(ts.root, "re\u0301sume\u0301.txt"), []byte("disk"), 0o644); err != nil {
		t.Fatal(err)
	}
	if g := ts.do("GET", "/"+escapeSegment("r\u00e9sum\u00e9.txt"), nil, "").must(t, http.StatusOK); g.body != "disk" {
		t.Fatalf("GET of an NFD file by its NFC name = %q", g.body)
	}
}

// Nothing outside the root can be read or written, whatever the path says.
func TestPathConfinement(t *testing.T) {
	ts := newTestServer(t)
	outside := t.TempDir()
	if err := os.WriteFile(filepath.Join(outside, "secret"), []byte("secret"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, filepath.Join(ts.root, "escape")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(outside, "secret"), filepath.Join(ts.root, "secretlink")); err != nil {
		t.Fatal(err)
	}
	rel, _ := filepath.Rel(ts.root, outside)
	raw := []struct{ method, path string }{
		{"GET", "/../" + rel + "/secret"},
		{"GET", "/%2e%2e/" + rel + "/secret"},
		{"GET", "/a/%2e%2e/%2e%2e/" + rel + "/secret"},
		{"GET", "/..%2f" + rel + "%2fsecret"},
		{"GET", "/..%5c" + rel + "%5csecret"},
		{"GET", "/a%00b"},
		{"PUT", "/%2e%2e/" + rel + "/written"},
		{"PUT", "/a%2fb"},
		{"GET", "/escape/secret"},
		{"GET", "/secretlink"},
		{"PUT", "/escape/written"},
		{"PUT", "/secretlink"},
		{"DELETE", "/escape/secret"},
		{"PROPFIND", "/escape/"},
	}
	for _, c := range raw {
		body := ""
		if c.method == "PUT" {
			body = "Content-Length: 4\r\n\r\nevil"
		} else {
			body = "\r\n"
		}
		ans := ts.rawRequest(c.method + " " + c.path + " HTTP/1.1\r\nHost: x\r\nConnection: close\r\n" + body)
		status := ""
		if len(ans) >= 12 {
			status = ans[9:12]
		}
		if status != "400" && status != "403" && status != "404" && status != "409" {
			t.Errorf("%s %s answered %q, want a 400/403/404/409", c.method, c.path, firstLine(ans))
		}
		if strings.Contains(ans, "secret\n") || strings.HasSuffix(ans, "secret") {
			t.Errorf("%s %s leaked the secret", c.method, c.path)
		}
	}
	if b, _ := os.ReadFile(filepath.Join(outside, "secret")); string(b) != "secret" {
		t.Fatal("the file outside the root was changed")
	}
	if _, err := os.Stat(filepath.Join(outside, "written")); err == nil {
		t.Fatal("a file was written outside the root")
	}
}

func firstLine(s string) string {
	l, _, _ := strings.Cut(s, "\r\n")
	return l
}

// A browser gets an HTML listing of a folder, with every name escaped and linked.
func TestBrowserListing(t *testing.T) {
	ts := newTestServer(t)
	ts.do("MKCOL", "/docs", nil, "").must(t, http.StatusCreated)
	ts.do("PUT", "/docs/"+escapeSegment(`<img src=x onerror=alert(1)>.txt`), nil, "x").must(t, http.StatusCreated)
	ts.do("MKCOL", "/docs/sub", nil, "").must(t, http.StatusCreated)
	r := ts.do("GET", "/docs/", nil, "").must(t, http.StatusOK)
	if !strings.HasPrefix(r.Header.Get("Content-Type"), "text/html") {
		t.Fatalf("Content-Type %q", r.Header.Get("Content-Type"))
	}
	if strings.Contains(r.body, "<img") {
		t.Fatal("a file name was not escaped in the listing")
	}
	for _, want := range []string{`href="/docs/sub/"`, `href="/"`, "&lt;img src=x onerror=alert(1)&gt;.txt", `href="/docs/%3Cimg%20src`} {
		if !strings.Contains(r.body, want) {
			t.Errorf("listing lacks %s:\n%s", want, r.body)
		}
	}
	ts.do("HEAD", "/docs/", nil, "").must(t, http.StatusOK)
}

// RFC 4331 quota properties on collections, which Windows shows as the drive's size.
func TestQuotaProperties(t *testing.T) {
	ts := newTestServer(t)
	body := `<?xml version="1.0"?><D:propfind xmlns:D="DAV:"><D:prop><D:quota-available-bytes/><D:quota-used-bytes/></D:prop></D:propfind>`
	r := ts.do("PROPFIND", "/", map[string]string{"Depth": "0"}, body).must(t, http.StatusMultiStatus)
	var ms struct {
		Avail int64 `xml:"response>propstat>prop>quota-available-bytes"`
		Used  int64 `xml:"response>propstat>prop>quota-used-bytes"`
	}
	if err := xml.Unmarshal([]byte(r.body), &ms); err != nil || ms.Avail <= 0 || ms.Used <= 0 {
		t.Fatalf("quota %+v, %v:\n%s", ms, err, r.body)
	}
	ts.do("PUT", "/f", nil, "x").must(t, http.StatusCreated)
	r = ts.do("PROPFIND", "/f", map[string]string{"Depth": "0"}, body).must(t, http.StatusMultiStatus)
	if !strings.Contains(r.body, "404 Not Found") {
		t.Fatalf("a file answered quota properties:\n%s", r.body)
	}
}

// FuzzNameFromPath checks that nameFromPath's shortcut for paths with nothing to
// decode answers as decoding segment by segment does.
func FuzzNameFromPath(f *testing.F) {
	for _, s := range []string{"/", "//", "/a/b", "/a//b/", "/a/./b", "/a/../b", "/%2e%2e/x",
		"/a%2Fb", "/caf%C3%A9", "/%zz", "/.safedav/x", "/a\\b", "a"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, p string) {
		if strings.Contains(p, "%") || !strings.HasPrefix(p, "/") {
			return // the loop itself answers these
		}
		got, err := nameFromPath(p)
		var b strings.Builder
		for seg := range strings.SplitSeq(p, "/") {
			if seg != "" {
				b.WriteByte('/')
				b.WriteString(seg)
			}
		}
		want, werr := backend.CleanName(b.String())
		if got != want || (err == nil) != (werr == nil) {
			t.Fatalf("nameFromPath(%q) = %q, %v; want %q, %v", p, got, err, want, werr)
		}
	})
}

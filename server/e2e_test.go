package server

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/xml"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"

	"safedav/backend/local"
	"safedav/coord"
	"safedav/locks"
)

// testServer is safedav on a real loopback listener over a fresh folder.
type testServer struct {
	URL      string
	Listener net.Listener
	client   *http.Client
	t        *testing.T
	root     string
	srv      *Server
}

func newTestServer(t *testing.T, mod ...func(*Config)) *testServer {
	t.Helper()
	root := t.TempDir()
	store, err := local.New(root, local.Options{Sync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	lm, err := locks.NewManager(locks.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ts := startServer(t, Config{Backend: store, Locks: coord.LocalLocks(lm)}, mod...)
	ts.root = root
	return ts
}

// startServer serves cfg, changed by mod, on a loopback listener until the test ends.
func startServer(t *testing.T, cfg Config, mod ...func(*Config)) *testServer {
	t.Helper()
	cfg.Version = "test"
	for _, m := range mod {
		m(&cfg)
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- s.Serve(ctx, ln) }()
	tr := &http.Transport{}
	t.Cleanup(func() {
		tr.CloseIdleConnections()
		cancel()
		if err := <-served; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return &testServer{URL: "http://" + ln.Addr().String(), Listener: ln, client: &http.Client{Transport: tr}, t: t, srv: s}
}

// Client is an HTTP client for the server; its connections close with the test.
func (ts *testServer) Client() *http.Client { return ts.client }

// result is a response with its body read.
type result struct {
	*http.Response
	body string
}

func (ts *testServer) do(method, path string, hdr map[string]string, body string) result {
	ts.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, ts.URL+path, rd)
	if err != nil {
		ts.t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	return ts.send(req)
}

func (ts *testServer) send(req *http.Request) result {
	ts.t.Helper()
	resp, err := ts.Client().Do(req)
	if err != nil {
		ts.t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		ts.t.Fatal(err)
	}
	return result{Response: resp, body: string(b)}
}

// must checks a status and returns the result for further checks.
func (r result) must(t *testing.T, status int) result {
	t.Helper()
	if r.StatusCode != status {
		t.Fatalf("%s %s: status %d, want %d; body:\n%s", r.Request.Method, r.Request.URL.Path, r.StatusCode, status, r.body)
	}
	return r
}

// davError is the structured error body in XML.
type davError struct {
	XMLName    xml.Name
	Code       string `xml:"https://safedav.dev/ns code"`
	Message    string `xml:"https://safedav.dev/ns message"`
	Path       string `xml:"https://safedav.dev/ns path"`
	ETag       string `xml:"https://safedav.dev/ns etag"`
	RequestID  string `xml:"https://safedav.dev/ns request-id"`
	LockTokenS *struct {
		Href []string `xml:"DAV: href"`
	} `xml:"DAV: lock-token-submitted"`
}

func (r result) davError(t *testing.T) davError {
	t.Helper()
	var e davError
	if err := xml.Unmarshal([]byte(r.body), &e); err != nil {
		t.Fatalf("error body is not XML: %v\n%s", err, r.body)
	}
	if e.XMLName.Space != "DAV:" || e.XMLName.Local != "error" {
		t.Fatalf("error body root is %v, want DAV:error", e.XMLName)
	}
	if e.Code == "" || e.Message == "" {
		t.Fatalf("error body lacks code or message:\n%s", r.body)
	}
	return e
}

func (r result) jsonError(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(r.body), &m); err != nil {
		t.Fatalf("error body is not JSON: %v\n%s", err, r.body)
	}
	return m
}

// rawRequest writes a request by hand on a new connection and returns the raw answer;
// for paths and bodies net/http's client would normalise or refuse.
func (ts *testServer) rawRequest(raw string) string {
	ts.t.Helper()
	c, err := net.Dial("tcp", ts.Listener.Addr().String())
	if err != nil {
		ts.t.Fatal(err)
	}
	defer c.Close()
	if _, err := io.WriteString(c, raw); err != nil {
		ts.t.Fatal(err)
	}
	var buf bytes.Buffer
	_, _ = io.Copy(&buf, c)
	return buf.String()
}

func stringsReader(s string) io.Reader { return strings.NewReader(s) }

package server

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/webdav"
)

// Each weakness of golang.org/x/net/webdav's Handler that made us write our own
// (docs/design.md, "Why our own handlers") is a scenario here. Every scenario must pass
// on safedav and fail on the bare x/net Handler: that proves the scenario can fail, and
// that safedav fixes it.
func TestBaselineXNetWebdav(t *testing.T) {
	scenarios := []struct {
		name string
		run  func(base, root string) error
	}{
		{"aborted_upload_keeps_old_file", func(base, root string) error {
			if err := put(base+"/f", "old content"); err != nil {
				return err
			}
			u := strings.TrimPrefix(base, "http://")
			c, err := net.Dial("tcp", u)
			if err != nil {
				return err
			}
			fmt.Fprintf(c, "PUT /f HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\n\r\npartial")
			time.Sleep(100 * time.Millisecond)
			c.Close()
			time.Sleep(200 * time.Millisecond)
			b, _ := os.ReadFile(filepath.Join(root, "f"))
			if string(b) != "old content" {
				return fmt.Errorf("old file became %q", b)
			}
			return nil
		}},
		{"if_match_on_put", func(base, root string) error {
			if err := put(base+"/g", "v1"); err != nil {
				return err
			}
			st, _ := status("PUT", base+"/g", map[string]string{"If-Match": `"stale"`}, "v2")
			if st != http.StatusPreconditionFailed {
				return fmt.Errorf("PUT with a stale If-Match answered %d", st)
			}
			return nil
		}},
		{"if_none_match_star_on_put", func(base, root string) error {
			if err := put(base+"/h", "v1"); err != nil {
				return err
			}
			st, _ := status("PUT", base+"/h", map[string]string{"If-None-Match": "*"}, "v2")
			if st != http.StatusPreconditionFailed {
				return fmt.Errorf("create-only PUT onto an existing file answered %d", st)
			}
			return nil
		}},
		{"if_header_etag", func(base, root string) error {
			if err := put(base+"/i", "v1"); err != nil {
				return err
			}
			// (Not ["stale"]) holds, so the write must go through (RFC 4918 §10.4.5).
			st, _ := status("PUT", base+"/i", map[string]string{"If": `(Not ["stale"])`}, "v2")
			if st != http.StatusNoContent && st != http.StatusCreated {
				return fmt.Errorf("PUT with a true If: (Not [etag]) answered %d", st)
			}
			return nil
		}},
		{"shared_locks", func(base, root string) error {
			if err := put(base+"/j", "v1"); err != nil {
				return err
			}
			shared := strings.Replace(lockBody, "<D:exclusive/>", "<D:shared/>", 1)
			st, _ := status("LOCK", base+"/j", nil, shared)
			if st != http.StatusOK {
				return fmt.Errorf("shared LOCK answered %d", st)
			}
			return nil
		}},
		{"proppatch_dead_property", func(base, root string) error {
			if err := put(base+"/k", "v1"); err != nil {
				return err
			}
			_, body := status("PROPPATCH", base+"/k", nil, proppatchBody)
			if !strings.Contains(body, "200 OK") {
				return fmt.Errorf("PROPPATCH refused: %s", body)
			}
			return nil
		}},
		{"structured_error_body", func(base, root string) error {
			st, body := status("PUT", base+"/no/parent", nil, "x")
			if st != http.StatusConflict || !strings.Contains(body, "DAV:") || !strings.Contains(body, "parent_missing") {
				return fmt.Errorf("missing parent answered %d %q", st, body)
			}
			return nil
		}},
		{"move_without_overwrite_header_replaces", func(base, root string) error {
			if put(base+"/m1", "a") != nil || put(base+"/m2", "b") != nil {
				return fmt.Errorf("setup failed")
			}
			st, _ := status("MOVE", base+"/m1", map[string]string{"Destination": base + "/m2"}, "")
			if st != http.StatusNoContent {
				return fmt.Errorf("MOVE onto an existing file without Overwrite answered %d (RFC 4918 §10.6: absent means T)", st)
			}
			return nil
		}},
	}
	for _, sc := range scenarios {
		t.Run(sc.name, func(t *testing.T) {
			ts := newTestServer(t)
			if err := sc.run(ts.URL, ts.root); err != nil {
				t.Errorf("safedav: %v", err)
			}
			root := t.TempDir()
			xs := httptest.NewServer(&webdav.Handler{FileSystem: webdav.Dir(root), LockSystem: webdav.NewMemLS()})
			defer xs.Close()
			if err := sc.run(xs.URL, root); err == nil {
				t.Errorf("x/net/webdav passed too: the scenario does not test a difference")
			}
		})
	}
}

func put(u, body string) error {
	st, b := status("PUT", u, nil, body)
	if st != http.StatusCreated && st != http.StatusNoContent {
		return fmt.Errorf("PUT %s: %d %s", u, st, b)
	}
	return nil
}

func status(method, u string, hdr map[string]string, body string) (int, string) {
	req, err := http.NewRequest(method, u, bytes.NewReader([]byte(body)))
	if err != nil {
		return 0, err.Error()
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

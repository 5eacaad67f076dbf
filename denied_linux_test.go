package main

import (
	"bufio"
	"bytes"
	"io"
	"net/http"
	"os"
	"os/user"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// EACCES for real: root reads every folder whatever its mode, so safedav runs here as
// user nobody over a tree with a folder only root may read. A listing, a read, a write
// and a copy that meet it answer 403 storage_forbidden (nothing to retry), never 500
// and never a listing without the folder's members; the log names the path and errno.
func TestUnreadableFolder(t *testing.T) {
	if os.Geteuid() != 0 {
		if os.Getenv("CI") == "true" {
			t.Fatal("CI=true but not root: cannot run safedav as nobody")
		}
		t.Skip("not root: cannot run safedav as nobody")
	}
	nobody, err := user.Lookup("nobody")
	if err != nil {
		t.Fatal(err)
	}
	uid, _ := strconv.Atoi(nobody.Uid)
	gid, _ := strconv.Atoi(nobody.Gid)

	// t.TempDir's parents are 0700: nobody could not reach anything below them.
	dir, err := os.MkdirTemp("", "safedav-denied-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.Chmod(dir, 0o755))
	// The test binary doubles as safedav (TestMain); nobody needs a copy it may run.
	bin := filepath.Join(dir, "safedav")
	self, err := os.ReadFile(os.Args[0])
	must(err)
	must(os.WriteFile(bin, self, 0o755))
	root := filepath.Join(dir, "data")
	for _, d := range []string{root, root + "/open", root + "/tree", root + "/tree/locked", root + "/links"} {
		must(os.Mkdir(d, 0o755))
	}
	// A symlink nobody cannot follow: not a dangling one, which a listing hides.
	must(os.Symlink("../tree/locked/secret.txt", root+"/links/secret.txt"))
	must(os.WriteFile(root+"/open/a.txt", []byte("a"), 0o644))
	must(os.WriteFile(root+"/tree/locked/secret.txt", []byte("s"), 0o600))
	for _, d := range []string{root, root + "/open", root + "/open/a.txt", root + "/tree", root + "/links"} {
		must(os.Chown(d, uid, gid))
	}
	must(os.Chmod(root+"/tree/locked", 0o700)) // root's, and only root's

	var logs bytes.Buffer
	var mu sync.Mutex
	cmd := command(t, []string{"SAFEDAV_ROOT=" + root, "SAFEDAV_LISTEN=127.0.0.1:0", "SAFEDAV_LOG_FORMAT=json",
		"SAFEDAV_ALLOW_INFINITE_DEPTH=true", "HOME=" + dir}, "serve")
	cmd.Path, cmd.Dir = bin, dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}}
	stdout, err := cmd.StdoutPipe()
	must(err)
	cmd.Stderr = &lockedWriter{mu: &mu, w: &logs}
	must(cmd.Start())
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	br := bufio.NewReader(stdout)
	line, err := br.ReadString('\n')
	if err != nil {
		t.Fatalf("%v; stderr: %s", err, logs.String())
	}
	go io.Copy(&lockedWriter{mu: &mu, w: &logs}, br)
	url := strings.TrimSuffix(regexp.MustCompile(`http://127\.0\.0\.1:\d+/`).FindString(line), "/")
	if url == "" {
		t.Fatalf("no URL in %q", line)
	}

	do := func(method, path string, hdr map[string]string, body string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(method, url+path, strings.NewReader(body))
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatalf("%s %s: reading the answer: %v", method, path, err)
		}
		return resp.StatusCode, string(b)
	}
	forbidden := func(method, path string, hdr map[string]string, body string) {
		t.Helper()
		st, b := do(method, path, hdr, body)
		if st != http.StatusForbidden || !strings.Contains(b, "storage_forbidden") {
			t.Errorf("%s %s: %d, want 403 storage_forbidden:\n%s", method, path, st, b)
		}
	}
	if st, b := do("PROPFIND", "/open/", map[string]string{"Depth": "1"}, ""); st != http.StatusMultiStatus || !strings.Contains(b, "a.txt") {
		t.Fatalf("PROPFIND of a readable folder: %d\n%s", st, b)
	}
	forbidden("PROPFIND", "/tree/locked/", map[string]string{"Depth": "1"}, "")
	forbidden("PROPFIND", "/", map[string]string{"Depth": "infinity"}, "")
	forbidden("GET", "/tree/locked/secret.txt", nil, "")
	forbidden("PUT", "/tree/locked/new.txt", nil, "new")
	forbidden("COPY", "/tree", map[string]string{"Destination": url + "/copy"}, "")
	forbidden("PROPFIND", "/links/", map[string]string{"Depth": "1"}, "")
	forbidden("COPY", "/links", map[string]string{"Destination": url + "/copy"}, "")
	if st, _ := do("PROPFIND", "/copy", map[string]string{"Depth": "0"}, ""); st != http.StatusNotFound {
		t.Errorf("a failed COPY left /copy behind: %d", st)
	}

	time.Sleep(100 * time.Millisecond) // let the last log lines arrive
	mu.Lock()
	out := logs.String()
	mu.Unlock()
	for _, want := range []string{
		`"msg":"storage refused".*"path":"/tree/locked".*permission denied`,                              // PROPFIND, GET of the folder itself
		`"msg":"storage refused".*"path":"/".*(listing|properties of) /tree/locked: .*permission denied`, // Depth: infinity
		`"msg":"storage refused".*"path":"/tree".*copying /tree/locked: .*permission denied`,
	} {
		if !regexp.MustCompile(want).MatchString(out) {
			t.Errorf("no log line naming the path and errno (%s):\n%s", want, out)
		}
	}
	if strings.Contains(out, `"level":"ERROR"`) {
		t.Errorf("a refused access logged as an error:\n%s", out)
	}
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

package main

import (
	"bufio"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// proc is one safedav process started by a test.
type proc struct {
	cmd    *exec.Cmd
	url    string
	stderr *strings.Builder
}

// startServe starts `safedav serve` with args on a loopback port and waits for the
// line that names its URL. The process is killed when the test ends.
func startServe(t *testing.T, args ...string) *proc {
	t.Helper()
	return startServeEnv(t, nil, args...)
}

// startServeEnv is startServe with env added to the process's environment.
func startServeEnv(t *testing.T, env []string, args ...string) *proc {
	t.Helper()
	cmd := command(t, env, append([]string{"serve", "--listen", "127.0.0.1:0"}, args...)...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	stderr := &strings.Builder{}
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("no start-up line: %v\n%s", err, stderr.String())
	}
	url := regexp.MustCompile(`http://127\.0\.0\.1:\d+/`).FindString(line)
	if url == "" {
		t.Fatalf("no URL in %q", line)
	}
	return &proc{cmd: cmd, url: url, stderr: stderr}
}

// kill9 ends the process at once, as a crash would: no shutdown, no final save.
func (s *proc) kill9(t *testing.T) {
	t.Helper()
	if err := s.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	s.cmd.Wait()
}

// do sends one request and returns the response with its body read.
func (s *proc) do(t *testing.T, method, path, body string, header ...string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(method, s.url+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp, string(b)
}

const lockBody = `<?xml version="1.0" encoding="utf-8"?>
<D:lockinfo xmlns:D="DAV:"><D:lockscope><D:exclusive/></D:lockscope><D:locktype><D:write/></D:locktype></D:lockinfo>`

// lockDoc PUTs doc.txt and locks it, returning the lock token.
func lockDoc(t *testing.T, s *proc) string {
	t.Helper()
	if r, _ := s.do(t, "PUT", "doc.txt", "v1"); r.StatusCode/100 != 2 {
		t.Fatalf("PUT answered %d", r.StatusCode)
	}
	r, _ := s.do(t, "LOCK", "doc.txt", lockBody, "Timeout", "Second-600")
	if r.StatusCode != http.StatusOK {
		t.Fatalf("LOCK answered %d", r.StatusCode)
	}
	return r.Header.Get("Lock-Token")
}

// A LOCK is in the lock file before it is answered: a kill -9 right after the answer
// keeps it (issue 20: the lock table used to be saved up to 100 ms later).
func TestLockSurvivesKill(t *testing.T) {
	root := t.TempDir()
	for round := range 10 {
		s := startServe(t, "--root", root)
		token := lockDoc(t, s)
		s.kill9(t)

		s = startServe(t, "--root", root)
		if r, _ := s.do(t, "PUT", "doc.txt", "v2"); r.StatusCode != http.StatusLocked {
			t.Fatalf("round %d: after kill -9, a PUT without the token answered %d, want 423: the lock was forgotten", round, r.StatusCode)
		}
		if r, _ := s.do(t, "UNLOCK", "doc.txt", "", "Lock-Token", token); r.StatusCode != http.StatusNoContent {
			t.Fatalf("round %d: UNLOCK answered %d", round, r.StatusCode)
		}
		s.kill9(t)
	}
}

// An UNLOCK is in the lock file before it is answered: after a kill -9 right after
// the answer, the lock does not come back.
func TestUnlockSurvivesKill(t *testing.T) {
	root := t.TempDir()
	for round := range 10 {
		s := startServe(t, "--root", root)
		token := lockDoc(t, s)
		// Longer than the old background save delay, so that this test is about the
		// UNLOCK alone even on code that saves late.
		time.Sleep(200 * time.Millisecond)
		if r, _ := s.do(t, "UNLOCK", "doc.txt", "", "Lock-Token", token); r.StatusCode != http.StatusNoContent {
			t.Fatalf("round %d: UNLOCK answered %d", round, r.StatusCode)
		}
		s.kill9(t)

		s = startServe(t, "--root", root)
		if r, _ := s.do(t, "PUT", "doc.txt", "v3"); r.StatusCode/100 != 2 {
			t.Fatalf("round %d: after UNLOCK and kill -9, a PUT answered %d: the lock came back", round, r.StatusCode)
		}
		s.kill9(t)
	}
}

// One process per root: a second server on a root that a live process serves exits at
// once, naming that process; after a kill -9 of the first, the lock file it left does
// not block a restart (issue 20).
func TestOneProcessPerRoot(t *testing.T) {
	root := t.TempDir()
	first := startServe(t, "--root", root)
	for _, args := range [][]string{
		{"--root", root},
		{"--root", root, "--state-dir", t.TempDir()},
		{"--root", t.TempDir(), "--state-dir", filepath.Join(root, ".safedav")},
	} {
		cmd := command(t, nil, append([]string{"serve", "--listen", "127.0.0.1:0"}, args...)...)
		done := make(chan struct{})
		var out []byte
		var err error
		go func() { out, err = cmd.CombinedOutput(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			t.Fatalf("%v: a second server on a served root did not exit", args)
		}
		pid := strconv.Itoa(first.cmd.Process.Pid)
		if err == nil || !strings.Contains(string(out), "pid "+pid) {
			t.Fatalf("%v: second server: exit %v, output (want the pid %s):\n%s", args, err, pid, out)
		}
	}
	if r, _ := first.do(t, "PUT", "still.txt", "up"); r.StatusCode != http.StatusCreated {
		t.Fatalf("the first server answered %d after the refusals", r.StatusCode)
	}
	first.kill9(t)
	if _, err := os.Stat(filepath.Join(root, ".safedav", "lock")); err != nil {
		t.Fatal(err)
	}
	again := startServe(t, "--root", root)
	if r, _ := again.do(t, "PUT", "again.txt", "up"); r.StatusCode != http.StatusCreated {
		t.Fatalf("the restarted server answered %d", r.StatusCode)
	}
}

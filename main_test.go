package main

import (
	"bufio"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The test binary doubles as safedav when SAFEDAV_TEST_MAIN is set, so the CLI is
// tested as a real process without a separate build.
func TestMain(m *testing.M) {
	if os.Getenv("SAFEDAV_TEST_MAIN") == "1" {
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func command(t *testing.T, env []string, args ...string) *exec.Cmd {
	cmd := exec.Command(os.Args[0], args...)
	cmd.Args[0] = "safedav"
	cmd.Env = append(append(os.Environ(), "SAFEDAV_TEST_MAIN=1"), env...)
	return cmd
}

func TestVersion(t *testing.T) {
	out, err := command(t, nil, "version").Output()
	if err != nil || !strings.HasPrefix(string(out), "safedav ") {
		t.Fatalf("version: %q %v", out, err)
	}
}

// serve takes its settings from the environment, answers WebDAV, and exits 0 on SIGTERM.
func TestServeEnvAndSignal(t *testing.T) {
	root := filepath.Join(t.TempDir(), "data")
	cmd := command(t, []string{"SAFEDAV_ROOT=" + root, "SAFEDAV_LISTEN=127.0.0.1:0", "SAFEDAV_LOG_FORMAT=json"}, "serve")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	url := regexp.MustCompile(`http://127\.0\.0\.1:\d+/`).FindString(line)
	if url == "" {
		t.Fatalf("no URL in %q", line)
	}
	req, _ := http.NewRequest("PUT", url+"hello.txt", strings.NewReader("hi"))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("PUT answered %d", resp.StatusCode)
	}
	if b, _ := os.ReadFile(filepath.Join(root, "hello.txt")); string(b) != "hi" {
		t.Fatalf("stored %q", b)
	}
	cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("exit after SIGTERM: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no exit after SIGTERM")
	}
}

func TestServeRejectsBadFlags(t *testing.T) {
	for _, args := range [][]string{
		{"serve", "--log-format", "xml"},
		{"serve", "--sync", "sometimes"},
		{"serve", "--overwrite-policy", "yolo"},
		{"serve", "--overwrite-rule", "nopattern"},
		{"serve", "--lock-conflict-status", "500"},
	} {
		cmd := command(t, []string{"SAFEDAV_ROOT=" + t.TempDir(), "SAFEDAV_LISTEN=127.0.0.1:0"}, args...)
		out, err := cmd.CombinedOutput()
		if err == nil {
			t.Errorf("%v: exited 0: %s", args, out)
		}
	}
}

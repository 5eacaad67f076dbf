// Package etcdtest starts a real etcd server (the etcd binary of Debian's etcd-server
// package, which the README tells users to run) on loopback ports for a test, and can
// stop and restart it to test what happens while coordination is unavailable.
package etcdtest

import (
	"bytes"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Server is one etcd member started for a test.
type Server struct {
	t        testing.TB
	bin, dir string
	client   string // host:port clients dial
	peer     string
	mu       sync.Mutex
	cmd      *exec.Cmd
	exited   chan struct{} // closed when cmd has exited
	log      *bytes.Buffer
}

// Binary is the etcd binary: $ETCD_BIN, or etcd on PATH. It skips the test when there
// is none, except under CI (CI=true), where a missing etcd fails it.
func Binary(t testing.TB) string {
	t.Helper()
	if p := os.Getenv("ETCD_BIN"); p != "" {
		return p
	}
	p, err := exec.LookPath("etcd")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("etcd is not installed (Debian: apt-get install etcd-server): %v", err)
		}
		t.Skip("etcd is not installed (Debian: apt-get install etcd-server)")
	}
	return p
}

// Start starts etcd on two free loopback ports with its data in a temporary folder,
// waits until it serves, and stops it when the test ends.
func Start(t testing.TB) *Server {
	t.Helper()
	s := &Server{t: t, bin: Binary(t), dir: t.TempDir()}
	// A port found free may be taken by another process before etcd binds it: then
	// try others.
	for attempt := 0; ; attempt++ {
		s.client, s.peer = freeAddr(t), freeAddr(t)
		err := s.start()
		if err == nil {
			break
		}
		if !strings.Contains(s.log.String(), "address already in use") || attempt == 4 {
			t.Fatal(err)
		}
	}
	t.Cleanup(s.Stop)
	return s
}

// Endpoint is the host:port clients dial.
func (s *Server) Endpoint() string { return s.client }

// Stop kills etcd (SIGKILL, as a crash or a lost machine would) and waits for it to
// exit. Its data stays, so Restart brings back the same cluster with the same state.
func (s *Server) Stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Signal(syscall.SIGKILL)
	<-s.exited
	s.cmd = nil
}

// Restart starts etcd again on the same ports and data after Stop (or the first time)
// and waits until it answers its health endpoint.
func (s *Server) Restart() {
	s.t.Helper()
	if err := s.start(); err != nil {
		s.t.Fatal(err)
	}
}

func (s *Server) start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd != nil {
		return nil
	}
	s.log = new(bytes.Buffer)
	cmd := exec.Command(s.bin,
		"--name", "test",
		"--data-dir", filepath.Join(s.dir, "data"),
		"--listen-client-urls", "http://"+s.client,
		"--advertise-client-urls", "http://"+s.client,
		"--listen-peer-urls", "http://"+s.peer,
		"--initial-advertise-peer-urls", "http://"+s.peer,
		"--initial-cluster", "test=http://"+s.peer,
		"--log-level", "warn",
	)
	cmd.Stdout, cmd.Stderr = s.log, s.log
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start etcd: %w", err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get("http://" + s.client + "/health")
		if err == nil {
			ok := resp.StatusCode == http.StatusOK
			resp.Body.Close()
			if ok {
				s.cmd, s.exited = cmd, exited
				return nil
			}
		}
		select {
		case <-exited:
			return fmt.Errorf("etcd exited at start on %s:\n%s", s.client, s.log.String())
		default:
		}
		if time.Now().After(deadline) {
			_ = cmd.Process.Kill()
			<-exited
			return fmt.Errorf("etcd did not become healthy on %s: %v\n%s", s.client, err, s.log.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// freeAddr is a loopback address no one listens on right now.
func freeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return fmt.Sprint(l.Addr())
}

package main

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/elliptic"
	cryptorand "crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
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
		{"serve", "--pprof-listen", "0.0.0.0:0"},
		{"serve", "--pprof-listen", "127.0.0.1"},
	} {
		cmd := command(t, []string{"SAFEDAV_ROOT=" + t.TempDir(), "SAFEDAV_LISTEN=127.0.0.1:0"}, args...)
		out, err := cmd.CombinedOutput()
		if err == nil {
			t.Errorf("%v: exited 0: %s", args, out)
		}
	}
}

func TestHashPasswordFromStdin(t *testing.T) {
	cmd := command(t, nil, "hash-password", "--cost", "4")
	cmd.Stdin = strings.NewReader("s3cret pass\n")
	out, err := cmd.Output()
	if err != nil {
		t.Fatal(err)
	}
	h := strings.TrimSpace(string(out))
	if bcrypt.CompareHashAndPassword([]byte(h), []byte("s3cret pass")) != nil {
		t.Fatalf("hash %q does not verify", h)
	}
	cmd = command(t, nil, "hash-password")
	cmd.Stdin = strings.NewReader("\n")
	if err := cmd.Run(); err == nil {
		t.Fatal("an empty password was hashed")
	}
}

// Without users, serving anything but a loopback address needs an explicit --anonymous.
func TestServeRefusesAnonymousOnNetwork(t *testing.T) {
	cmd := command(t, []string{"SAFEDAV_ROOT=" + t.TempDir()}, "serve", "--listen", "192.0.2.1:8080")
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "--users") {
		t.Fatalf("served anonymously on a network address: %v %s", err, out)
	}
}

// writeCert makes a self-signed certificate for 127.0.0.1 with the given serial.
func writeCert(t *testing.T, dir string, serial int64) (certFile, keyFile string) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), cryptorand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial),
		Subject:      pkix.Name{CommonName: "safedav test"},
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(cryptorand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, _ := x509.MarshalECPrivateKey(key)
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600)
	return certFile, keyFile
}

// TLS end to end: HTTPS with HTTP/2, Basic auth with an htpasswd file, and a new
// certificate picked up on SIGHUP without a restart.
func TestServeTLSUsersAndReload(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile := writeCert(t, dir, 1)
	h, _ := bcrypt.GenerateFromPassword([]byte("pw"), 4)
	users := filepath.Join(dir, "htpasswd")
	os.WriteFile(users, []byte("carol:"+string(h)+"\n"), 0o600)
	cmd := command(t, []string{"SAFEDAV_ROOT=" + filepath.Join(dir, "data")}, "serve",
		"--listen", "127.0.0.1:0", "--tls-cert", certFile, "--tls-key", keyFile, "--users", users,
		"--login-failures", "1000") // the test polls as a user that exists only after SIGHUP
	stdout, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Signal(syscall.SIGTERM); cmd.Wait() }()
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	url := regexp.MustCompile(`https://127\.0\.0\.1:\d+/`).FindString(line)
	if url == "" {
		t.Fatalf("no https URL in %q", line)
	}
	client := func() *http.Client {
		return &http.Client{Transport: &http.Transport{
			TLSClientConfig:   &tls.Config{InsecureSkipVerify: true}, // self-signed; the serial is checked below
			ForceAttemptHTTP2: true,
		}}
	}
	do := func(c *http.Client, method, path, body string, auth bool) *http.Response {
		req, _ := http.NewRequest(method, url+path, strings.NewReader(body))
		if auth {
			req.SetBasicAuth("carol", "pw")
		}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp
	}
	c := client()
	if r := do(c, "GET", "", "", false); r.StatusCode != http.StatusUnauthorized {
		t.Fatalf("no credentials: %d", r.StatusCode)
	}
	r := do(c, "PUT", "hello.txt", "hi", true)
	if r.StatusCode != http.StatusCreated || r.ProtoMajor != 2 {
		t.Fatalf("PUT over TLS: %d %s", r.StatusCode, r.Proto)
	}
	if r.TLS.PeerCertificates[0].SerialNumber.Int64() != 1 {
		t.Fatal("unexpected certificate")
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "data", "carol", "hello.txt")); string(b) != "hi" {
		t.Fatalf("stored %q in carol's root", b)
	}
	// SIGHUP re-reads the certificate and the users file.
	writeCert(t, dir, 2)
	h2, _ := bcrypt.GenerateFromPassword([]byte("pw"), 4)
	os.WriteFile(users, []byte("carol:"+string(h)+"\ndave:"+string(h2)+"\n"), 0o600)
	cmd.Process.Signal(syscall.SIGHUP)
	deadline := time.Now().Add(5 * time.Second)
	for {
		r := do(client(), "HEAD", "hello.txt", "", true)
		if r.TLS.PeerCertificates[0].SerialNumber.Int64() == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the new certificate was not served after SIGHUP")
		}
		time.Sleep(50 * time.Millisecond)
	}
	for {
		req, _ := http.NewRequest("PUT", url+"dave.txt", strings.NewReader("d"))
		req.SetBasicAuth("dave", "pw")
		resp, err := client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode == http.StatusCreated {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("a user added before SIGHUP still answered %d", resp.StatusCode)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Settings come from a YAML file too, flags and environment first; an unknown key is an
// error.
func TestServeConfigFile(t *testing.T) {
	dir := t.TempDir()
	conf := filepath.Join(dir, "safedav.yaml")
	data, err := os.ReadFile(filepath.Join("testdata", "safedav.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(conf, data, 0o644)
	root := filepath.Join(dir, "data")
	cmd := command(t, []string{"SAFEDAV_CONFIG=" + conf}, "serve", "--listen", "127.0.0.1:0", "--root", root)
	stdout, _ := cmd.StdoutPipe()
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Signal(syscall.SIGTERM); cmd.Wait() }()
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		t.Fatalf("%v: %s", err, stderr.String())
	}
	url := regexp.MustCompile(`http://127\.0\.0\.1:\d+/`).FindString(line)
	os.MkdirAll(filepath.Join(root, "inbox"), 0o755)
	for i, want := range []int{http.StatusCreated, http.StatusCreated} {
		req, _ := http.NewRequest("PUT", url+"inbox/a.txt", strings.NewReader("x"))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Fatalf("upload %d answered %d", i, resp.StatusCode)
		}
	}
	if _, err := os.Stat(filepath.Join(root, "inbox", "a (1).txt")); err != nil {
		t.Fatal("the rule from the configuration file (/inbox/**=rename) did not apply")
	}
	cmd.Process.Signal(syscall.SIGTERM)
	cmd.Wait()
	if !strings.Contains(stderr.String(), `"msg":"safedav serving"`) {
		t.Fatalf("log-format json from the file did not apply:\n%s", stderr.String())
	}

	os.WriteFile(conf, []byte("listne: 127.0.0.1:1\n"), 0o644)
	out, err := command(t, []string{"SAFEDAV_CONFIG=" + conf}, "serve").CombinedOutput()
	if err == nil || !strings.Contains(string(out), "unknown settings listne") {
		t.Fatalf("a misspelt key was accepted: %v %s", err, out)
	}
}

// An S3 endpoint that does not answer stops the server at start-up with a clear message.
func TestServeS3Unreachable(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // a closed loopback port
	cmd := command(t, nil, "serve", "--backend", "s3", "--s3-endpoint", addr, "--s3-bucket", "b",
		"--s3-insecure", "--s3-access-key", "k", "--s3-secret-key", "secret-value", "--listen", "127.0.0.1:0")
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "unreachable") || strings.Contains(string(out), "secret-value") {
		t.Fatalf("exit %v, output:\n%s", err, out)
	}
	out, err = command(t, nil, "serve", "--backend", "s3", "--listen", "127.0.0.1:0").CombinedOutput()
	if err == nil || !strings.Contains(string(out), "--s3-endpoint") {
		t.Fatalf("missing endpoint: exit %v, output:\n%s", err, out)
	}
}

// The profiles are served on loopback only, and answer there.
func TestPprofListener(t *testing.T) {
	log := slog.New(slog.DiscardHandler)
	for _, addr := range []string{"0.0.0.0:0", "[::]:0", "192.0.2.1:6060", "127.0.0.1"} {
		if _, err := servePprof(addr, log); err == nil || !strings.Contains(err.Error(), "pprof-listen") {
			t.Errorf("servePprof(%q) = %v, want a refusal naming the flag", addr, err)
		}
	}
	a, err := servePprof("127.0.0.1:0", log)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.Get("http://" + a.String() + "/debug/pprof/cmdline")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("pprof answered %d", resp.StatusCode)
	}
}

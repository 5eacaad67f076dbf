package s3

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

// The tests run against a real S3 server: the one named by SAFEDAV_TEST_S3_ENDPOINT
// (with SAFEDAV_TEST_S3_ACCESS_KEY, SAFEDAV_TEST_S3_SECRET_KEY and optionally
// SAFEDAV_TEST_S3_BUCKET), as .ci/s3server prints them, or else a versitygw that
// TestMain starts over a temporary directory and stops at the end. Without either the
// tests skip, except when CI=true, where a missing server is a failure.

// testServer is the server the tests use; skip says why there is none.
var testServer struct {
	endpoint, access, secret, bucket string
	skip                             string
}

const versitygwModule = "github.com/versity/versitygw/cmd/versitygw@v1.8.0"

func TestMain(m *testing.M) {
	stop, err := setupServer()
	if err != nil {
		testServer.skip = err.Error()
	}
	code := m.Run()
	stop()
	os.Exit(code)
}

// setupServer finds the test server or starts versitygw, and returns how to stop it.
func setupServer() (stop func(), err error) {
	stop = func() {}
	testServer.bucket = "safedav-test"
	if b := os.Getenv("SAFEDAV_TEST_S3_BUCKET"); b != "" {
		testServer.bucket = b
	}
	if ep := os.Getenv("SAFEDAV_TEST_S3_ENDPOINT"); ep != "" {
		testServer.endpoint = ep
		testServer.access = os.Getenv("SAFEDAV_TEST_S3_ACCESS_KEY")
		testServer.secret = os.Getenv("SAFEDAV_TEST_S3_SECRET_KEY")
		return stop, nil
	}
	bin := findVersitygw()
	if bin == "" {
		return stop, fmt.Errorf("no S3 server: set SAFEDAV_TEST_S3_ENDPOINT or install versitygw (go install %s)", versitygwModule)
	}
	dir, err := os.MkdirTemp("", "safedav-s3-test-*")
	if err != nil {
		return stop, err
	}
	port, err := freePort()
	if err != nil {
		return stop, err
	}
	testServer.endpoint = "127.0.0.1:" + port
	testServer.access, testServer.secret = "safedavtest", "safedavtestsecret"
	log, err := os.Create(filepath.Join(dir, "versitygw.log"))
	if err != nil {
		return stop, err
	}
	data := filepath.Join(dir, "data")
	if err := os.Mkdir(data, 0o755); err != nil {
		return stop, err
	}
	cmd := exec.Command(bin, "--port", testServer.endpoint, "--quiet", "posix", data)
	cmd.Env = append(os.Environ(), "ROOT_ACCESS_KEY="+testServer.access, "ROOT_SECRET_KEY="+testServer.secret)
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		return stop, fmt.Errorf("start versitygw: %w", err)
	}
	stop = func() {
		cmd.Process.Kill()
		cmd.Wait()
		log.Close()
		os.RemoveAll(dir)
	}
	for deadline := time.Now().Add(30 * time.Second); ; {
		c, err := net.DialTimeout("tcp", testServer.endpoint, time.Second)
		if err == nil {
			c.Close()
			return stop, nil
		}
		if time.Now().After(deadline) {
			return stop, fmt.Errorf("versitygw did not answer on %s", testServer.endpoint)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// findVersitygw looks for the binary on PATH, in $(go env GOPATH)/bin and in /tmp/gobin.
func findVersitygw() string {
	if p, err := exec.LookPath("versitygw"); err == nil {
		return p
	}
	var dirs []string
	if out, err := exec.Command("go", "env", "GOPATH").Output(); err == nil {
		for _, d := range filepath.SplitList(strings.TrimSpace(string(out))) {
			dirs = append(dirs, filepath.Join(d, "bin"))
		}
	}
	dirs = append(dirs, "/tmp/gobin")
	for _, d := range dirs {
		p := filepath.Join(d, "versitygw")
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() {
			return p
		}
	}
	return ""
}

// freePort returns a loopback port that was free a moment ago.
func freePort() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	_, port, err := net.SplitHostPort(l.Addr().String())
	return port, err
}

var bucketOnce sync.Once
var bucketErr error

// requireServer skips (or fails, under CI=true) when there is no server, and makes
// sure the test bucket exists.
func requireServer(t testing.TB) {
	t.Helper()
	if testServer.skip != "" {
		if os.Getenv("CI") == "true" {
			t.Fatal(testServer.skip)
		}
		t.Skip(testServer.skip)
	}
	bucketOnce.Do(func() {
		c := rawClient(t)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		ok, err := c.BucketExists(ctx, testServer.bucket)
		if err == nil && !ok {
			err = c.MakeBucket(ctx, testServer.bucket, minio.MakeBucketOptions{})
		}
		bucketErr = err
	})
	if bucketErr != nil {
		t.Fatalf("test bucket: %v", bucketErr)
	}
}

// rawClient is a plain minio-go client on the test server, for checking what the
// store wrote and writing what other tools would.
func rawClient(t testing.TB) *minio.Client {
	t.Helper()
	c, err := minio.New(testServer.endpoint, &minio.Options{
		Creds: credentials.NewStaticV4(testServer.access, testServer.secret, ""),
	})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// testOptions are the options of a store on a fresh prefix of the test bucket.
func testOptions(t testing.TB) Options {
	t.Helper()
	requireServer(t)
	return Options{
		Endpoint:  testServer.endpoint,
		Bucket:    testServer.bucket,
		Prefix:    "t-" + newVersion() + "/",
		AccessKey: testServer.access,
		SecretKey: testServer.secret,
		Insecure:  true,
	}
}

// newStore opens a store with opt and removes everything under its prefix when the
// test ends.
func newStore(t testing.TB, opt Options) *Store {
	t.Helper()
	s, err := New(t.Context(), opt)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := s.removeKeys(ctx, s.prefix); err != nil && !errors.Is(err, context.Canceled) {
			t.Logf("cleanup of %s: %v", s.prefix, err)
		}
	})
	return s
}

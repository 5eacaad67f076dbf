package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"io"
	"net/http"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

// s3Test returns the S3 server of the tests (see .ci/s3server) with its bucket, and
// the flags of a safedav serving a fresh prefix of it; it skips without one.
func s3Test(t *testing.T) (c *minio.Client, bucket, prefix string, flags []string) {
	t.Helper()
	ep := os.Getenv("SAFEDAV_TEST_S3_ENDPOINT")
	if ep == "" {
		if os.Getenv("CI") == "true" {
			t.Fatal("no S3 server: .ci/run starts one")
		}
		t.Skip("no S3 server: run .ci/s3server start")
	}
	access, secret := os.Getenv("SAFEDAV_TEST_S3_ACCESS_KEY"), os.Getenv("SAFEDAV_TEST_S3_SECRET_KEY")
	bucket = os.Getenv("SAFEDAV_TEST_S3_BUCKET")
	if bucket == "" {
		bucket = "safedav-test"
	}
	c, err := minio.New(ep, &minio.Options{Creds: credentials.NewStaticV4(access, secret, "")})
	if err != nil {
		t.Fatal(err)
	}
	if ok, err := c.BucketExists(t.Context(), bucket); err != nil {
		t.Fatal(err)
	} else if !ok {
		if err := c.MakeBucket(t.Context(), bucket, minio.MakeBucketOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	var b [8]byte
	rand.Read(b[:])
	prefix = "main-" + hex.EncodeToString(b[:]) + "/"
	flags = []string{"--backend", "s3", "--s3-endpoint", ep, "--s3-bucket", bucket,
		"--s3-prefix", prefix, "--s3-insecure"}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		for u := range c.ListIncompleteUploads(ctx, bucket, prefix, true) {
			if u.Err == nil {
				c.RemoveIncompleteUpload(ctx, bucket, u.Key)
			}
		}
		for oi := range c.ListObjects(ctx, bucket, minio.ListObjectsOptions{Prefix: prefix, Recursive: true}) {
			if oi.Err == nil {
				c.RemoveObject(ctx, bucket, oi.Key, minio.RemoveObjectOptions{})
			}
		}
	})
	return c, bucket, prefix, flags
}

// A safedav killed (SIGKILL) in the middle of uploads leaves their multipart uploads;
// the next start removes them, and staging objects, once idle for --s3-stale-after.
func TestServeS3KilledMidUpload(t *testing.T) {
	c, bucket, prefix, flags := s3Test(t)
	env := []string{"SAFEDAV_S3_ACCESS_KEY=" + os.Getenv("SAFEDAV_TEST_S3_ACCESS_KEY"),
		"SAFEDAV_S3_SECRET_KEY=" + os.Getenv("SAFEDAV_TEST_S3_SECRET_KEY")}
	const part = 5 << 20
	p := startServeEnv(t, env, append(flags, "--s3-part-size", "5242880")...)
	cmd, url := p.cmd, p.url

	// Two uploads of unknown length send two parts and a half, then hang.
	for _, name := range []string{"a.bin", "b.bin"} {
		pr, pw := io.Pipe()
		t.Cleanup(func() { pw.Close() })
		go func() {
			pw.Write(make([]byte, 2*part+part/2))
			<-t.Context().Done()
		}()
		req, _ := http.NewRequestWithContext(t.Context(), "PUT", url+name, pr)
		go func() {
			if resp, err := http.DefaultClient.Do(req); err == nil {
				resp.Body.Close()
			}
		}()
	}
	uploads := func() (n, parts int) {
		for u := range c.ListIncompleteUploads(t.Context(), bucket, prefix, true) {
			if u.Err != nil {
				t.Fatal(u.Err)
			}
			n++
			res, err := minio.Core{Client: c}.ListObjectParts(t.Context(), bucket, u.Key, u.UploadID, 0, 100)
			if err == nil {
				parts += len(res.ObjectParts)
			}
		}
		return n, parts
	}
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if n, parts := uploads(); n == 2 && parts == 4 {
			break
		}
		if time.Now().After(deadline) {
			n, parts := uploads()
			t.Fatalf("the uploads did not start: %d uploads, %d parts", n, parts)
		}
	}
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()
	// What a Create killed between its staging and its copy leaves.
	staging := prefix + ".safedav/staging/dead-instance/body"
	if _, err := c.PutObject(t.Context(), bucket, staging, strings.NewReader("x"), 1, minio.PutObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	if n, _ := uploads(); n != 2 {
		t.Fatalf("after kill -9: %d uploads, want 2 left behind", n)
	}

	time.Sleep(2500 * time.Millisecond) // idle for longer than --s3-stale-after
	cmd = startServeEnv(t, env, append(flags, "--s3-stale-after", "1s")...).cmd
	defer cmd.Process.Signal(syscall.SIGTERM)
	if n, parts := uploads(); n != 0 {
		t.Errorf("after the restart: %d uploads (%d parts) left", n, parts)
	}
	for oi := range c.ListObjects(t.Context(), bucket, minio.ListObjectsOptions{Prefix: prefix + ".safedav/staging/", Recursive: true}) {
		t.Errorf("after the restart: %s left (%v)", oi.Key, oi.Err)
	}
}

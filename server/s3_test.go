package server

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"safedav/backend/s3"
	"safedav/overwrite"
)

// s3Servers starts n safedav servers over one bucket and prefix of the real S3 server
// that .ci/run starts (SAFEDAV_TEST_S3_*): the deployment of several replicas behind
// a load balancer, whose only shared state is the bucket.
func s3Servers(t *testing.T, n int, mod ...func(*Config)) []*testServer {
	t.Helper()
	endpoint := os.Getenv("SAFEDAV_TEST_S3_ENDPOINT")
	if endpoint == "" {
		if os.Getenv("CI") == "true" {
			t.Fatal("CI=true but no S3 server: .ci/run starts one and sets SAFEDAV_TEST_S3_ENDPOINT")
		}
		t.Skip("no S3 server (run .ci/s3server start DIR and export its variables)")
	}
	access, secret := os.Getenv("SAFEDAV_TEST_S3_ACCESS_KEY"), os.Getenv("SAFEDAV_TEST_S3_SECRET_KEY")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	mc, err := minio.New(endpoint, &minio.Options{Creds: credentials.NewStaticV4(access, secret, ""), Region: "us-east-1"})
	if err != nil {
		t.Fatal(err)
	}
	const bucket = "server-e2e"
	if ok, err := mc.BucketExists(ctx, bucket); err != nil {
		t.Fatal(err)
	} else if !ok {
		if err := mc.MakeBucket(ctx, bucket, minio.MakeBucketOptions{Region: "us-east-1"}); err != nil {
			t.Fatal(err)
		}
	}
	var b [6]byte
	rand.Read(b[:])
	prefix := strings.ReplaceAll(t.Name(), "/", "_") + "-" + hex.EncodeToString(b[:])
	var out []*testServer
	for range n {
		store, err := s3.New(ctx, s3.Options{Endpoint: endpoint, Bucket: bucket, Prefix: prefix, Region: "us-east-1",
			AccessKey: access, SecretKey: secret, Insecure: true, PartSize: s3.MinPartSize})
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, startServer(t, Config{Backend: store}, mod...))
	}
	return out
}

// Two servers sharing one bucket lose no update under read-modify-write with If-Match.
func TestS3TwoServersNoLostUpdate(t *testing.T) {
	noLostUpdate(t, s3Servers(t, 2), 5*time.Second)
}

// Exactly one create-only upload wins across two servers.
func TestS3TwoServersCreateOnly(t *testing.T) {
	createOnlyRace(t, s3Servers(t, 2))
}

// 50 uploads of one name under "rename" across two servers give 50 distinct files.
func TestS3TwoServersRename(t *testing.T) {
	servers := s3Servers(t, 2, withPolicy(overwrite.Rename))
	renameRace(t, servers)
	ms := servers[1].do("PROPFIND", "/", map[string]string{"Depth": "1"}, "").must(t, http.StatusMultiStatus).multistatus(t)
	if len(ms.Responses) != 51 {
		t.Fatalf("%d entries, want 50 files and the root", len(ms.Responses))
	}
}

// Under "reject" the second server refuses what the first stored.
func TestS3TwoServersReject(t *testing.T) {
	servers := s3Servers(t, 2, withPolicy(overwrite.Reject))
	servers[0].do("PUT", "/keep.txt", nil, "first").must(t, http.StatusCreated)
	r := servers[1].do("PUT", "/keep.txt", nil, "second").must(t, http.StatusConflict)
	if r.davError(t).Code != "name_exists" {
		t.Fatal(r.body)
	}
	if g := servers[1].do("GET", "/keep.txt", nil, "").must(t, http.StatusOK); g.body != "first" {
		t.Fatalf("keep.txt = %q", g.body)
	}
}

package s3

import (
	"context"
	"io"
	"iter"
	"sync/atomic"
	"testing"
	"time"

	"safedav/backend"
	"safedav/backend/backendtest"
	"safedav/cluster"
	"safedav/internal/etcdtest"
)

// TestConformanceEtcdClaims runs the conformance suite, its namespace races included,
// on two stores over one bucket and prefix (two replicas), each taking its claims in
// etcd through its own cluster.Cluster. Operations alternate between the stores, so
// the two sides of a race mostly run on different replicas and only the claims in
// etcd order them. Like the other S3 tests it needs versitygw, and etcd too
// (both skip outside CI when missing).
func TestConformanceEtcdClaims(t *testing.T) {
	testOptions(t) // skip early without an S3 server
	srv := etcdtest.Start(t)
	backendtest.Run(t, func(t *testing.T) backend.Backend {
		opt := testOptions(t)
		var r replicas
		for i := range r.stores {
			c, err := cluster.Open(t.Context(), cluster.Options{
				Endpoints:  []string{srv.Endpoint()},
				Prefix:     "/" + opt.Prefix,
				SessionTTL: 5 * time.Second,
			})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { c.Close() })
			o := opt
			// A longer wait than the server's: on a loaded machine eight writers of one
			// name can queue past 5 s, and a 409 namespace_busy, though correct, is not
			// what these cases check.
			o.Claims = c.Claims(time.Minute)
			r.stores[i] = newStore(t, o)
		}
		return &r
	})
}

// replicas is a backend.Backend that sends each operation to one of two stores in
// turn.
type replicas struct {
	stores [2]*Store
	n      atomic.Uint32
}

var _ backend.PropStore = (*replicas)(nil)

func (r *replicas) next() *Store { return r.stores[r.n.Add(1)%2] }

func (r *replicas) Stat(ctx context.Context, name string) (backend.Info, error) {
	return r.next().Stat(ctx, name)
}

func (r *replicas) List(ctx context.Context, dir string, fn func(backend.Info) error) error {
	return r.next().List(ctx, dir, fn)
}

func (r *replicas) Open(ctx context.Context, name string) (io.ReadSeekCloser, backend.Info, error) {
	return r.next().Open(ctx, name)
}

func (r *replicas) Put(ctx context.Context, name string, body io.Reader, c backend.Cond, m backend.Meta) (backend.Info, bool, error) {
	return r.next().Put(ctx, name, body, c, m)
}

func (r *replicas) Create(ctx context.Context, names iter.Seq[string], body io.Reader, m backend.Meta) (backend.Info, error) {
	return r.next().Create(ctx, names, body, m)
}

func (r *replicas) Mkdir(ctx context.Context, name string, c backend.Cond) (backend.Info, error) {
	return r.next().Mkdir(ctx, name, c)
}

func (r *replicas) Remove(ctx context.Context, name string, c backend.Cond) error {
	return r.next().Remove(ctx, name, c)
}

func (r *replicas) Copy(ctx context.Context, src, dst string, c backend.Cond, depth int) (bool, error) {
	return r.next().Copy(ctx, src, dst, c, depth)
}

func (r *replicas) Move(ctx context.Context, src, dst string, c backend.Cond) (bool, error) {
	return r.next().Move(ctx, src, dst, c)
}

func (r *replicas) Props(ctx context.Context, name string) ([]backend.Prop, error) {
	return r.next().Props(ctx, name)
}

func (r *replicas) PatchProps(ctx context.Context, name string, c backend.Cond, patches []backend.PropPatch) error {
	return r.next().PatchProps(ctx, name, c, patches)
}

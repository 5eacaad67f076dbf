// Package cluster keeps the state safedav replicas share in etcd, so that several
// processes over one S3 bucket behave as one server: WebDAV locks (Locks), uploads in
// progress (Uploads), idempotency records (Idempotency) and the namespace claims of
// the storage commit (Claims). Every check and the claim it guards are one etcd
// transaction; what a replica holds for the length of a request is bound to its
// session lease, so a replica that dies loses it within the lease's TTL.
//
// Keys, under Options.Prefix (default "/safedav/"):
//
//	claim/<name>\x00<mode>\x00<owner>      namespace claims (claims.go)
//	lock/{x,s}/<root>\x00{0,i}\x00<token>  WebDAV locks, each on its own lease (locks.go)
//	upload/<name>\x00<owner>              uploads in progress (uploads.go)
//	idem/<principal>\x00<key>             idempotency records (idem.go)
package cluster

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"
	"go.uber.org/zap"

	"safedav/coord"
)

// DefaultSessionTTL is the TTL of a replica's session lease: how long after a replica
// dies (or loses etcd) the claims and uploads it held are released.
const DefaultSessionTTL = 10 * time.Second

// Options configure a connection to etcd.
type Options struct {
	// Endpoints are the etcd members, host:port or URLs.
	Endpoints []string
	// Prefix is prepended to every key, so that several safedav clusters (or other
	// programs) can share one etcd. Default "/safedav/".
	Prefix string
	// TLS, when set, is used to dial etcd (client certificates included).
	TLS *tls.Config
	// Username and Password authenticate to etcd when its auth is enabled.
	Username, Password string
	// DialTimeout bounds connecting at start-up (default 5 s).
	DialTimeout time.Duration
	// SessionTTL is the session lease's TTL (default DefaultSessionTTL).
	SessionTTL time.Duration
}

// Cluster is one replica's connection to etcd and its session.
type Cluster struct {
	cli    *clientv3.Client
	prefix string
	ttl    int // session TTL in seconds
	// id names this replica in the keys it owns, unique per process.
	id string

	mu      sync.Mutex
	session *concurrency.Session
}

// Open connects to etcd, checks that it answers within DialTimeout, and starts the
// replica's session.
func Open(ctx context.Context, opt Options) (*Cluster, error) {
	if len(opt.Endpoints) == 0 {
		return nil, errors.New("cluster: no etcd endpoints")
	}
	if opt.Prefix == "" {
		opt.Prefix = "/safedav/"
	}
	if !strings.HasSuffix(opt.Prefix, "/") {
		opt.Prefix += "/"
	}
	if opt.DialTimeout <= 0 {
		opt.DialTimeout = 5 * time.Second
	}
	if opt.SessionTTL <= 0 {
		opt.SessionTTL = DefaultSessionTTL
	}
	cli, err := clientv3.New(clientv3.Config{
		Endpoints:            opt.Endpoints,
		TLS:                  opt.TLS,
		Username:             opt.Username,
		Password:             opt.Password,
		DialTimeout:          opt.DialTimeout,
		DialKeepAliveTime:    5 * time.Second,
		DialKeepAliveTimeout: 3 * time.Second,
		Logger:               zap.NewNop(),
	})
	if err != nil {
		return nil, fmt.Errorf("cluster: etcd %s: %w", strings.Join(opt.Endpoints, ","), err)
	}
	c := &Cluster{cli: cli, prefix: opt.Prefix, ttl: max(int(opt.SessionTTL/time.Second), 1), id: newID()}
	cctx, cancel := context.WithTimeout(ctx, opt.DialTimeout)
	defer cancel()
	// A read proves the endpoints answer and the credentials are accepted.
	if _, err := cli.Get(cctx, c.prefix+"probe"); err != nil {
		cli.Close()
		return nil, fmt.Errorf("cluster: etcd %s does not answer: %w", strings.Join(opt.Endpoints, ","), err)
	}
	if _, err := c.Session(cctx); err != nil {
		cli.Close()
		return nil, err
	}
	return c, nil
}

// Client is the etcd client.
func (c *Cluster) Client() *clientv3.Client { return c.cli }

// ID names this replica (process) in the keys it owns.
func (c *Cluster) ID() string { return c.id }

// Key is the full key of a path under the cluster's prefix.
func (c *Cluster) Key(parts ...string) string { return c.prefix + strings.Join(parts, "") }

// Session returns the replica's live session, starting a new one when the last one
// ended (its lease expired while etcd was out of reach, or was revoked). What was
// bound to an ended session is gone: that is the fence of a replica that stalled.
func (c *Cluster) Session(ctx context.Context) (*concurrency.Session, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.session != nil {
		select {
		case <-c.session.Done():
			c.session = nil
		default:
			return c.session, nil
		}
	}
	// The lease is granted under ctx, which bounds the call: NewSession would grant it
	// under its own context, which must outlive ctx (it keeps the lease alive), and the
	// client waits for a connection without limit, so with etcd down it would hang.
	lease, err := c.cli.Grant(ctx, int64(c.ttl))
	if err != nil {
		return nil, Unavailable(err)
	}
	s, err := concurrency.NewSession(c.cli, concurrency.WithTTL(c.ttl), concurrency.WithLease(lease.ID),
		concurrency.WithContext(context.WithoutCancel(ctx)))
	if err != nil {
		return nil, Unavailable(err)
	}
	c.session = s
	return s, nil
}

// Close revokes the session, so that what this replica held is released at once
// rather than after the TTL, and closes the client.
func (c *Cluster) Close() error {
	c.mu.Lock()
	s := c.session
	c.session = nil
	c.mu.Unlock()
	if s != nil {
		_ = s.Close()
	}
	return c.cli.Close()
}

// Ctx bounds one call to etcd on a request's path by coord.Deadline.
func Ctx(parent context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(parent, coord.Deadline)
}

// Unavailable wraps an error from etcd as coord.ErrUnavailable, unless the request's
// own context ended (the client went away), which stays what it is.
func Unavailable(err error) error {
	if err == nil || errors.Is(err, context.Canceled) {
		return err
	}
	return &unavailableError{err}
}

type unavailableError struct{ err error }

func (e *unavailableError) Error() string { return "etcd: " + e.err.Error() }
func (e *unavailableError) Unwrap() []error {
	return []error{coord.ErrUnavailable, e.err}
}

func newID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

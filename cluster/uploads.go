package cluster

import (
	"context"
	"fmt"
	"sync"
	"time"

	"safedav/backend"
	"safedav/backend/claims"
	"safedav/coord"
)

// Uploads returns the replica's coord.Uploads: an upload in progress is the key
// upload/<name>\x00<owner> on the session lease, so one replica's upload excludes
// every other replica's upload of the same name, and a replica that dies ends its
// uploads within the session TTL.
//
// When the request carries a coord.Scope, the upload also takes its name's write
// claim (claims.Write) in the same transaction and records it in the Scope: a folder
// MOVE or DELETE above the name, on any replica, then either runs before the upload
// begins or waits for it to end, and the commit's own claim is granted by the Scope
// without a second round trip (see Claims). Without a Scope no claim is taken, since
// the request's commit could not know it holds one and would wait on itself.
//
// A folder claim that conflicts is waited for up to claimWait, then BeginWait fails
// with an error that is backend.ErrBusy (and claims.ErrBusy).
func (c *Cluster) Uploads(claimWait time.Duration) coord.Uploads {
	return &uploads{c: c, claimWait: claimWait, ending: make(map[string]chan struct{})}
}

// endGrace is how long an upload waits at least for another upload of its name to
// end before it fails with coord.ErrUploadInProgress. An upload's end reaches etcd
// after its response (done deletes its keys in the background, to keep etcd off the
// response's path), so a client whose next PUT of the same name lands on another
// replica, or arrives first, may still find the last one registered for about a
// round trip; it must not be told 409 for its own finished upload.
const endGrace = time.Second

type uploads struct {
	c         *Cluster
	claimWait time.Duration

	// ending holds, per name, the uploads of this replica that have ended and whose
	// keys are being deleted: the next upload of the name here waits for that first,
	// so that a client's back-to-back PUTs to one replica never meet their own past.
	mu     sync.Mutex
	ending map[string]chan struct{}
}

var _ coord.Uploads = (*uploads)(nil)

// BeginWait implements coord.Uploads in one transaction: if no upload of name is
// registered and no claim conflicts with name's write claim, put both. On failure
// done is a no-op; errors are coord.ErrUploadInProgress, backend.ErrBusy,
// coord.ErrUnavailable or ctx's.
func (u *uploads) BeginWait(ctx context.Context, name string, wait time.Duration) (done func(), err error) {
	nop := func() {}
	if err := ctx.Err(); err != nil {
		return nop, err
	}
	u.mu.Lock()
	prev := u.ending[name]
	u.mu.Unlock()
	if prev != nil {
		select {
		case <-prev:
		case <-ctx.Done():
			return nop, ctx.Err()
		}
	}
	c := u.c
	owner := c.newOwner()
	g := &guarded{
		ranges: []keyRange{prefixRange(c.Key("upload/", name, "\x00"))},
		keys:   []string{c.Key("upload/", name, "\x00", owner)},
	}
	scope := coord.ScopeOf(ctx)
	if scope != nil {
		want := claims.Expand(claims.Write(name))
		if len(want) > maxTxnNames {
			return nop, errTooDeep(len(want))
		}
		c.addClaims(g, want, owner)
	}
	start := time.Now()
	uploading := g.ranges[0]
	rev, err := c.take(ctx, g, func(busy []keyRange) (time.Time, error) {
		for _, r := range busy {
			if r == uploading {
				return start.Add(max(wait, endGrace)), coord.ErrUploadInProgress
			}
		}
		return start.Add(u.claimWait), fmt.Errorf("%w: %w (waited %v)", backend.ErrBusy, claims.ErrBusy, u.claimWait)
	})
	if err != nil {
		return nop, err
	}
	held := coord.Held{Name: name, Write: true}
	if scope != nil {
		scope.Hold(held)
		scope.Observe(rev)
	}
	var once sync.Once
	return func() {
		once.Do(func() {
			scope.Release(held)
			ended := make(chan struct{})
			u.mu.Lock()
			u.ending[name] = ended
			u.mu.Unlock()
			c.deleterThen(g.keys, func() {
				u.mu.Lock()
				if u.ending[name] == ended {
					delete(u.ending, name)
				}
				u.mu.Unlock()
				close(ended)
			})()
		})
	}, nil
}

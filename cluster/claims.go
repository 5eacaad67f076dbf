package cluster

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"safedav/backend"
	"safedav/backend/claims"
	"safedav/coord"
)

// A namespace claim is one key per name it covers, bound to the replica's session
// lease:
//
//	claim/<name>\x00<tag>\x00<owner>
//
// <owner> is unique to one Acquire, so two operations of one replica are as separate
// as two of different replicas. The \x00 after <name> (a byte no name holds) keeps a
// name's keys apart from its descendants' ("/a\x00" never prefixes "/a/b...").
//
// Only exact names need checking. An operation stores claims.Expand of its claims:
// its own modes plus IS or IX on every ancestor. When a claim at n conflicts with one
// held at a descendant d, the holder of d also holds IS or IX at n, and that intention
// is incompatible with the wanted S or X at n by the same matrix (IS with X, IX with S
// and X); symmetrically a claim held at an ancestor a meets the wanted intention at a.
// So checking every name of the wanted set against the keys at that same name finds
// every conflict, and nothing below a name is ever listed.
//
// The tags put the modes in the key order IS < IX < X < S, in which the modes that
// conflict with any one mode are adjacent (X: all; S: IX X; IX: X S; IS: X), so each
// name costs one range compare (TestConflictRangesMatchMatrix checks this against
// claims.Compatible).
var (
	modeTag     = [4]string{claims.IS: "1is", claims.IX: "2ix", claims.X: "3x", claims.S: "4s"}
	tagOrder    = []claims.Mode{claims.IS, claims.IX, claims.X, claims.S}
	conflicting = conflictRanges()
)

// conflictRanges gives, for each wanted mode, the first and last position in
// tagOrder of the held modes it cannot coexist with.
func conflictRanges() (r [4][2]int) {
	for _, want := range tagOrder {
		lo, hi := len(tagOrder), -1
		for i, held := range tagOrder {
			if !claims.Compatible(held, want) {
				lo, hi = min(lo, i), max(hi, i)
			}
		}
		r[want] = [2]int{lo, hi}
	}
	return r
}

// maxTxnNames bounds the names one transaction claims. etcd refuses a transaction
// whose compares, success or failure operations outnumber its --max-txn-ops (default
// 128; each list is counted on its own). A claim transaction has one compare, one put
// and one read per name, and an upload's adds one of each, so 120 names stay within
// the default with room to spare. That is a path 119 segments deep, or a MOVE between
// two of about 60; a deeper one fails with backend.ErrNameTooLong (400), as a name
// longer than the store can hold does.
const maxTxnNames = 120

// owners numbers the acquisitions of this process, so that each has its own keys.
var owners atomic.Uint64

func (c *Cluster) newOwner() string {
	return c.id + "." + strconv.FormatUint(owners.Add(1), 10)
}

// keyRange is the keys from from up to, not including, end.
type keyRange struct{ from, end string }

func prefixRange(p string) keyRange {
	return keyRange{p, clientv3.GetPrefixRangeEnd(p)}
}

// guarded is one all-or-nothing step: when every range is empty, keys are put, bound
// to the session lease.
type guarded struct {
	ranges []keyRange
	keys   []string
}

// addClaims adds the keys of the expanded claims want and the ranges they must not
// meet, in name order.
func (c *Cluster) addClaims(g *guarded, want map[string]claims.Mode, owner string) {
	names := make([]string, 0, len(want))
	for n := range want {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		m := want[n]
		base := c.Key("claim/", n, "\x00")
		r := conflicting[m]
		// Tags start with their position in tagOrder plus one.
		g.ranges = append(g.ranges, keyRange{base + strconv.Itoa(r[0]+1), base + strconv.Itoa(r[1]+2)})
		g.keys = append(g.keys, base+modeTag[m]+"\x00"+owner)
	}
}

// errTooDeep is the error of claims that cannot fit in one transaction.
func errTooDeep(n int) error {
	return fmt.Errorf("%w: %d names to claim, more than the %d of one etcd transaction", backend.ErrNameTooLong, n, maxTxnNames)
}

// try runs g's transaction once, under coord.Deadline. It returns whether the keys
// were put and, when not, which ranges held keys, one of those keys (the first of
// the first busy range), and the revision they were seen at.
func (c *Cluster) try(ctx context.Context, g *guarded) (ok bool, busy []keyRange, blocker string, rev int64, err error) {
	cmps := make([]clientv3.Cmp, len(g.ranges))
	firsts := make([]clientv3.Op, len(g.ranges))
	for i, r := range g.ranges {
		cmps[i] = clientv3.Compare(clientv3.CreateRevision(r.from).WithRange(r.end), "=", 0)
		firsts[i] = clientv3.OpGet(r.from, clientv3.WithRange(r.end), clientv3.WithKeysOnly(), clientv3.WithLimit(1))
	}
	for attempt := 0; ; attempt++ {
		cctx, cancel := Ctx(ctx)
		s, err := c.Session(cctx)
		if err != nil {
			cancel()
			return false, nil, "", 0, err
		}
		puts := make([]clientv3.Op, len(g.keys))
		for i, k := range g.keys {
			puts[i] = clientv3.OpPut(k, "", clientv3.WithLease(s.Lease()))
		}
		resp, err := c.cli.Txn(cctx).If(cmps...).Then(puts...).Else(firsts...).Commit()
		cancel()
		switch {
		case errors.Is(err, rpctypes.ErrLeaseNotFound) && attempt == 0:
			// The lease expired (etcd was out of reach longer than its TTL) before
			// the keep-alive noticed: end the session so the next one is new.
			s.Orphan()
			continue
		case errors.Is(err, rpctypes.ErrTooManyOps):
			return false, nil, "", 0, errTooDeep(len(g.ranges))
		case err != nil:
			return false, nil, "", 0, Unavailable(err)
		case resp.Succeeded:
			return true, nil, "", resp.Header.Revision, nil
		}
		for i, r := range resp.Responses {
			if kvs := r.GetResponseRange().GetKvs(); len(kvs) > 0 {
				if busy == nil {
					blocker = string(kvs[0].Key)
				}
				busy = append(busy, g.ranges[i])
			}
		}
		if busy == nil { // cannot happen: the compares and the gets saw one state
			return false, nil, "", 0, Unavailable(errors.New("transaction failed on no key"))
		}
		return false, busy, blocker, resp.Header.Revision, nil
	}
}

// take runs g until its keys are put. When a range holds keys, giveUp says until when
// to wait and what to fail with then; meanwhile take waits until one key that
// blocked it is gone, and tries again. Once the deadline passed it tries a last
// time, so that an etcd that stopped answering during the wait is told apart from a
// conflict.
func (c *Cluster) take(ctx context.Context, g *guarded, giveUp func(busy []keyRange) (time.Time, error)) (rev int64, err error) {
	for {
		ok, busy, blocker, rev, err := c.try(ctx, g)
		if ok || err != nil {
			return rev, err
		}
		deadline, busyErr := giveUp(busy)
		if !time.Now().Before(deadline) {
			return 0, busyErr
		}
		if err := c.waitGone(ctx, blocker, rev, deadline); err != nil {
			return 0, err
		}
	}
}

// waitGone returns when key, which existed at revision rev, is gone, when the watch
// fails, or when deadline passes; with ctx's error when ctx ends first.
//
// The watch starts at etcd's current revision rather than at rev+1: etcd serves a
// watch that starts in the past from a catch-up loop that runs every 100 ms, which
// would delay every wake-up. A deletion between rev and the watch's start is not
// missed: when the watch started later than rev, key is read again once it is in
// place, and any later deletion is an event.
func (c *Cluster) waitGone(ctx context.Context, key string, rev int64, deadline time.Time) error {
	wctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	for resp := range c.cli.Watch(wctx, key, clientv3.WithCreatedNotify(), clientv3.WithFilterPut()) {
		if len(resp.Events) > 0 || resp.Err() != nil {
			break
		}
		if resp.Created && resp.Header.Revision > rev {
			gctx, gcancel := Ctx(wctx)
			g, err := c.cli.Get(gctx, key, clientv3.WithCountOnly())
			gcancel()
			if err != nil || g.Count == 0 {
				break
			}
		}
	}
	return ctx.Err()
}

// deleter returns a func that deletes keys once, in the background under
// coord.Deadline, so that the request never waits for it. If the delete fails the
// keys go with the session lease.
func (c *Cluster) deleter(keys []string) func() {
	return c.deleterThen(keys, nil)
}

// deleterThen is deleter, calling then (if not nil) once the deletion has ended,
// done or failed.
func (c *Cluster) deleterThen(keys []string, then func()) func() {
	var once sync.Once
	return func() {
		once.Do(func() {
			go func() {
				if then != nil {
					defer then()
				}
				ctx, cancel := Ctx(context.Background())
				defer cancel()
				ops := make([]clientv3.Op, len(keys))
				for i, k := range keys {
					ops[i] = clientv3.OpDelete(k)
				}
				_, _ = c.cli.Txn(ctx).Then(ops...).Commit()
			}()
		})
	}
}

// Claims returns the replica's claims.Claimer: the claims of every replica on the
// same etcd prefix exclude each other as a claims.Table's do within a process.
// Acquire waits up to wait for conflicting claims to be released, then fails with an
// error that is claims.ErrBusy; it fails with coord.ErrUnavailable when etcd does
// not answer, and with backend.ErrNameTooLong when the claims cover more names than
// one transaction holds. Unlike a Table it does not serve waiters in order: each
// retries when a key that blocked it is deleted, so a folder MOVE waiting for the
// writes into the folder to end can be outrun by new ones until its wait ends.
// Claims already held by the request (its ctx's coord.Scope) are granted at once
// without asking etcd.
func (c *Cluster) Claims(wait time.Duration) claims.Claimer {
	return &claimer{c: c, wait: wait}
}

type claimer struct {
	c    *Cluster
	wait time.Duration
}

var _ claims.Claimer = (*claimer)(nil)

// Acquire implements claims.Claimer in one transaction: if no conflicting key exists
// at any name of the expanded claims, put them all. release deletes them in the
// background and is idempotent.
func (cl *claimer) Acquire(ctx context.Context, cs ...claims.Claim) (release func(), err error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if holdsAll(coord.ScopeOf(ctx), cs) {
		return func() {}, nil
	}
	want := claims.Expand(cs...)
	if len(want) == 0 {
		return func() {}, nil
	}
	if len(want) > maxTxnNames {
		return nil, errTooDeep(len(want))
	}
	g := new(guarded)
	cl.c.addClaims(g, want, cl.c.newOwner())
	deadline := time.Now().Add(cl.wait)
	_, err = cl.c.take(ctx, g, func([]keyRange) (time.Time, error) {
		return deadline, fmt.Errorf("%w (waited %v)", claims.ErrBusy, cl.wait)
	})
	if err != nil {
		return nil, err
	}
	return cl.c.deleter(g.keys), nil
}

// holdsAll reports whether the request already holds every claim of cs, which then
// need not be taken again: the holder keeps them until it ends.
func holdsAll(s *coord.Scope, cs []claims.Claim) bool {
	if s == nil || len(cs) == 0 {
		return false
	}
	for _, c := range cs {
		if !s.Holds(coord.Held{Name: c.Name, Write: c.Mode == claims.X || c.Mode == claims.IX}) {
			return false
		}
	}
	return true
}

package cluster

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"safedav/backend"
	"safedav/coord"
	"safedav/locks"
)

// maxTxnOps is etcd's default --max-txn-ops: the most compares, and separately the
// most operations of each branch, one transaction may hold.
const maxTxnOps = 128

// catchUp bounds how long a check waits for the watch cache to reach the revision
// its request has seen before it reads etcd instead (the read gets the rest of
// coord.Deadline). The event of a transaction normally reaches every replica's watch
// within a millisecond or two; after 50 ms a read is the cheaper way to be sure.
const catchUp = 50 * time.Millisecond

// ErrTooDeep means a lock was asked for on a name so deep that its conflict check
// does not fit in one etcd transaction: two compares per ancestor, so about 60
// levels. It wraps locks.ErrInvalidLock (400): no client locks that deep.
var ErrTooDeep = fmt.Errorf("%w: name too deep for a cluster lock", locks.ErrInvalidLock)

// Locks are the WebDAV locks of the cluster, kept in etcd with the semantics of
// locks.Manager. Each lock is one key,
//
//	lock/{x,s}/<root>\x00{0,i}\x00<token>
//
// (exclusive or shared; depth 0 or infinity) holding the Lock as JSON, on a lease of
// its own whose TTL is the lock's timeout. The lease belongs to the lock, not to a
// replica: a lock outlives the replica that granted it, and disappears by itself when
// its client stops refreshing it, even if every replica is gone. Expires in the value
// is what counts (the lease is rounded up to whole seconds, and etcd renews every
// lease when it restarts); the lease only collects the garbage.
//
// Expiry is decided by each replica's clock against the Expires another replica
// wrote, so replicas' clocks must agree to well within a lock timeout (NTP does).
//
// The layout puts every lock that can conflict with a new one under a few prefixes:
// the locks at its root, the depth-infinity locks of each ancestor, and the locks
// below it, so a Create is one transaction of "nothing under these prefixes" compares
// and a put.
//
// Every replica keeps all locks in a cache fed by a watch of the cluster's whole
// prefix, so that every etcd transaction's revision reaches it. Checks answer from it
// when the request has already seen a revision (coord.Scope) and read etcd otherwise.
type Locks struct {
	c          *Cluster
	now        func() time.Time
	maxTimeout time.Duration
	defTimeout time.Duration
	maxLocks   int
	report     func(error)

	stop    context.CancelFunc
	done    chan struct{}
	revokes sync.WaitGroup

	mu       sync.RWMutex
	cache    *index
	rev      int64         // the cache holds every change up to this revision
	advanced chan struct{} // closed (and replaced) whenever rev grows
}

var _ coord.Locks = (*Locks)(nil)

// Locks lists the cluster's locks into a cache, starts the watch that keeps it
// current, and returns them with opt's timeouts and MaxLocks (opt.Store is unused:
// etcd is the store; opt.OnSaveError receives the errors of Removed). It fails with
// coord.ErrUnavailable when etcd does not answer the listing within coord.Deadline.
func (c *Cluster) Locks(ctx context.Context, opt locks.Options) (*Locks, error) {
	l := &Locks{
		c:          c,
		now:        opt.Now,
		maxTimeout: opt.MaxTimeout,
		defTimeout: opt.DefaultTimeout,
		maxLocks:   opt.MaxLocks,
		report:     opt.OnSaveError,
		done:       make(chan struct{}),
		advanced:   make(chan struct{}),
	}
	if l.now == nil {
		l.now = time.Now
	}
	if l.maxTimeout <= 0 {
		l.maxTimeout = locks.DefaultMaxTimeout
	}
	if l.defTimeout <= 0 {
		l.defTimeout = locks.DefaultTimeout
	}
	l.defTimeout = min(l.defTimeout, l.maxTimeout)
	if l.maxLocks <= 0 {
		l.maxLocks = locks.DefaultMaxLocks
	}
	cctx, cancel := Ctx(ctx)
	err := l.list(cctx)
	cancel()
	if err != nil {
		return nil, err
	}
	wctx, stop := context.WithCancel(context.Background())
	l.stop = stop
	go l.watch(wctx)
	return l, nil
}

// Close stops the watch. The locks stay in etcd: they belong to their clients and
// end with their own timeouts.
func (l *Locks) Close() {
	l.stop()
	<-l.done
	l.revokes.Wait()
}

// Create grants a lock as locks.Manager.Create does, in one transaction: if no key
// under the conflicting prefixes exists, put the new lock on its own lease. When the
// compare fails, the same transaction returns what is under those prefixes; locks
// that have expired (by their Expires) but whose lease has not yet removed them are
// deleted and the transaction tried again, so an expired lock never blocks.
// MaxLocks is enforced against the cache, so it is approximate: replicas granting at
// the same moment may together exceed it by a few.
func (l *Locks) Create(ctx context.Context, req locks.Lock) (locks.Lock, error) {
	if !validRoot(req.Root) || (req.Depth != backend.DepthZero && req.Depth != backend.DepthInfinity) {
		return locks.Lock{}, locks.ErrInvalidLock
	}
	prefixes := l.conflictPrefixes(req.Root, req.Depth, req.Shared)
	if len(prefixes) > maxTxnOps {
		return locks.Lock{}, ErrTooDeep
	}
	if rev := coord.ScopeOf(ctx).Rev(); rev > 0 {
		// Count what this request has seen, such as its own earlier locks.
		wctx, cancel := context.WithTimeout(ctx, catchUp)
		l.caughtUp(wctx, rev)
		cancel()
	}
	if l.live() >= l.maxLocks {
		return locks.Lock{}, locks.ErrTooManyLocks
	}
	nl := req
	nl.Owner = slices.Clone(req.Owner)
	nl.Token = newToken()
	nl.Timeout = l.grant(req.Timeout, l.defTimeout)

	cctx, cancel := Ctx(ctx)
	defer cancel()
	lease, err := l.c.cli.Grant(cctx, ttl(nl.Timeout))
	if err != nil {
		return locks.Lock{}, failed(ctx, err)
	}
	granted := false
	defer func() {
		if !granted {
			l.revoke(lease.ID)
		}
	}()
	cmps := make([]clientv3.Cmp, len(prefixes))
	gets := make([]clientv3.Op, len(prefixes))
	for i, p := range prefixes {
		cmps[i] = clientv3.Compare(clientv3.CreateRevision(p).WithPrefix(), "=", 0)
		gets[i] = clientv3.OpGet(p, clientv3.WithPrefix())
	}
	key := l.key(&nl)
	for {
		nl.Expires = l.now().Add(nl.Timeout)
		val, _ := json.Marshal(nl)
		resp, err := l.c.cli.Txn(cctx).If(cmps...).
			Then(clientv3.OpPut(key, string(val), clientv3.WithLease(lease.ID))).
			Else(gets...).Commit()
		if err != nil {
			return locks.Lock{}, failed(ctx, err)
		}
		coord.ScopeOf(ctx).Observe(resp.Header.Revision)
		if resp.Succeeded {
			granted = true
			nl.Owner = slices.Clone(nl.Owner)
			return nl, nil
		}
		x := newIndex()
		for _, r := range resp.Responses {
			addKVs(x, r.GetResponseRange().Kvs...)
		}
		now := l.now()
		if c := conflict(x, &nl, now); c != nil {
			return locks.Lock{}, lockedBy(&c.lock)
		}
		n, err := l.deleteExpired(cctx, x, now)
		if err != nil {
			return locks.Lock{}, failed(ctx, err)
		}
		if n == 0 {
			// Neither live nor expired: a key under lock/ that is not a lock.
			return locks.Lock{}, fmt.Errorf("locks: unreadable key under %s", l.c.Key("lock/"))
		}
	}
}

// Refresh restarts a lock's timeout as locks.Manager.Refresh does. It grants a new
// lease with the new TTL and moves the key onto it in one transaction that compares
// the key's ModRevision (so a concurrent unlock or refresh is not undone), then
// revokes the old lease. A new lease rather than KeepAliveOnce on the old one: the
// value's Expires must change in the same step anyway, a keep-alive can only restore
// the TTL the lease was granted with (a refresh may ask for another), and the move is
// atomic where a put followed by a keep-alive is not.
func (l *Locks) Refresh(ctx context.Context, name, token, principal string, d time.Duration) (locks.Lock, error) {
	cctx, cancel := Ctx(ctx)
	defer cancel()
	read := false
	for {
		var e entry
		var oerr error
		if err := l.exact(cctx, name, false, read, func(x *index) { e, oerr = owned(x, name, token, principal, l.now()) }); err != nil {
			return locks.Lock{}, failed(ctx, err)
		}
		if oerr != nil {
			return locks.Lock{}, oerr
		}
		nl := e.lock
		if d == 0 {
			d = nl.Timeout
		}
		nl.Timeout = l.grant(d, l.defTimeout)
		lease, err := l.c.cli.Grant(cctx, ttl(nl.Timeout))
		if err != nil {
			return locks.Lock{}, failed(ctx, err)
		}
		nl.Expires = l.now().Add(nl.Timeout)
		val, _ := json.Marshal(nl)
		resp, err := l.c.cli.Txn(cctx).
			If(clientv3.Compare(clientv3.ModRevision(e.key), "=", e.modRev)).
			Then(clientv3.OpPut(e.key, string(val), clientv3.WithLease(lease.ID))).Commit()
		if err != nil || !resp.Succeeded {
			l.revoke(lease.ID)
			if err != nil {
				return locks.Lock{}, failed(ctx, err)
			}
			read = true // the cache was behind, or the lock changed: look again
			continue
		}
		coord.ScopeOf(ctx).Observe(resp.Header.Revision)
		l.revoke(e.lease)
		return nl, nil
	}
}

// Unlock removes a lock as locks.Manager.Unlock does: it deletes the key if it is
// still the one it found (ModRevision), then revokes its lease. The delete is what
// counts; a failed revoke leaves an empty lease that expires by itself.
func (l *Locks) Unlock(ctx context.Context, name, token, principal string) error {
	cctx, cancel := Ctx(ctx)
	defer cancel()
	read := false
	for {
		var e entry
		var oerr error
		if err := l.exact(cctx, name, false, read, func(x *index) { e, oerr = owned(x, name, token, principal, l.now()) }); err != nil {
			return failed(ctx, err)
		}
		if oerr != nil {
			return oerr
		}
		resp, err := l.c.cli.Txn(cctx).
			If(clientv3.Compare(clientv3.ModRevision(e.key), "=", e.modRev)).
			Then(clientv3.OpDelete(e.key)).Commit()
		if err != nil {
			return failed(ctx, err)
		}
		if !resp.Succeeded {
			read = true
			continue
		}
		coord.ScopeOf(ctx).Observe(resp.Header.Revision)
		l.revoke(e.lease)
		return nil
	}
}

// Check decides as locks.Manager.Check does, exactly: see exact.
func (l *Locks) Check(ctx context.Context, principal, name string, infinite bool, tokens []string) error {
	cctx, cancel := Ctx(ctx)
	defer cancel()
	var cerr error
	if err := l.exact(cctx, name, infinite, false, func(x *index) { cerr = check(x, l.now(), principal, name, infinite, tokens) }); err != nil {
		return failed(ctx, err)
	}
	return cerr
}

// HasLock reports, exactly (see exact), whether token names a live lock covering name.
func (l *Locks) HasLock(ctx context.Context, name, token string) (bool, error) {
	cctx, cancel := Ctx(ctx)
	defer cancel()
	var ok bool
	if err := l.exact(cctx, name, false, false, func(x *index) {
		e := x.byToken[token]
		ok = e != nil && e.lock.Expires.After(l.now()) && covers(&e.lock, name)
	}); err != nil {
		return false, failed(ctx, err)
	}
	return ok, nil
}

// Discover lists the live locks covering name, outermost root first, from the
// cache: lockdiscovery is advisory, so it answers (what the cache last saw) while
// etcd is down. When the request has seen a revision it waits a little for the cache
// to reach it, then answers anyway.
func (l *Locks) Discover(ctx context.Context, name string) ([]locks.Lock, error) {
	if rev := coord.ScopeOf(ctx).Rev(); rev > 0 {
		cctx, cancel := context.WithTimeout(ctx, catchUp)
		l.caughtUp(cctx, rev)
		cancel()
	}
	now := l.now()
	l.mu.RLock()
	defer l.mu.RUnlock()
	var out []locks.Lock
	for _, e := range l.cache.covering(name) {
		if e.lock.Expires.After(now) {
			lk := e.lock
			lk.Owner = slices.Clone(lk.Owner)
			out = append(out, lk)
		}
	}
	// covering lists the nearest root first, oldest lock first within a root; the
	// roots are all ancestors of name, so the shorter is the outer.
	sort.SliceStable(out, func(i, j int) bool { return len(out[i].Root) < len(out[j].Root) })
	return out, nil
}

// Removed deletes the locks at and below name in one transaction of range deletes,
// then revokes their leases. It is best-effort and bounded by coord.Deadline even
// when the request has ended: a lock it fails to delete still ends with its timeout.
// An error goes to Options.OnSaveError. When the request has seen a revision and the
// cache, caught up with it, holds no lock there, it costs no round trip.
func (l *Locks) Removed(ctx context.Context, name string) {
	sc := coord.ScopeOf(ctx)
	cctx, cancel := Ctx(context.WithoutCancel(ctx))
	defer cancel()
	if rev := sc.Rev(); rev > 0 {
		wctx, wcancel := context.WithTimeout(cctx, catchUp)
		ok := l.caughtUp(wctx, rev)
		wcancel()
		if ok {
			l.mu.RLock()
			none := len(l.cache.byRoot[name]) == 0 && len(l.cache.below(name)) == 0
			l.mu.RUnlock()
			if none {
				return
			}
		}
	}
	var ops []clientv3.Op
	for _, kind := range []string{"x", "s"} {
		if name != "/" {
			ops = append(ops, clientv3.OpDelete(l.atPrefix(kind, name), clientv3.WithPrefix(), clientv3.WithPrevKV()))
		}
		ops = append(ops, clientv3.OpDelete(l.belowPrefix(kind, name), clientv3.WithPrefix(), clientv3.WithPrevKV()))
	}
	resp, err := l.c.cli.Txn(cctx).Then(ops...).Commit()
	if err != nil {
		if l.report != nil {
			l.report(fmt.Errorf("locks: removing the locks of %s: %w", name, Unavailable(err)))
		}
		return
	}
	sc.Observe(resp.Header.Revision)
	for _, r := range resp.Responses {
		for _, kv := range r.GetResponseDeleteRange().PrevKvs {
			l.revoke(clientv3.LeaseID(kv.Lease))
		}
	}
}

// exact calls f with an index that holds every lock covering name (with below, every
// lock below it too) as of one moment within the call, so the answer is
// linearizable: a lock granted before the call began is in it.
//
// From the cache, when ctx's Scope has seen revision rev > 0 and the cache has
// applied every change up to rev: the request's earlier etcd call, at rev, began
// after the request did, so anything granted before the request began has a
// revision <= rev and is in the cache. No round trip.
//
// Otherwise (no revision seen, the cache is not caught up within catchUp, or read)
// from one linearizable read of the relevant prefixes at one revision, which the
// Scope then records.
func (l *Locks) exact(ctx context.Context, name string, below, read bool, f func(*index)) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	sc := coord.ScopeOf(ctx)
	if rev := sc.Rev(); rev > 0 && !read {
		l.mu.RLock()
		ok := l.rev >= rev
		l.mu.RUnlock()
		if !ok {
			wctx, cancel := context.WithTimeout(ctx, catchUp)
			ok = l.caughtUp(wctx, rev)
			cancel()
		}
		if ok {
			l.mu.RLock()
			defer l.mu.RUnlock()
			f(l.cache)
			return nil
		}
		if err := ctx.Err(); err != nil {
			return err
		}
	}
	var prefixes []string
	for _, kind := range []string{"x", "s"} {
		prefixes = append(prefixes, l.atPrefix(kind, name))
		for a := name; a != "/"; {
			a = backend.Parent(a)
			prefixes = append(prefixes, l.infPrefix(kind, a))
		}
		if below {
			prefixes = append(prefixes, l.belowPrefix(kind, name))
		}
	}
	x, rev, err := l.read(ctx, prefixes)
	if err != nil {
		return err
	}
	sc.Observe(rev)
	f(x)
	return nil
}

// read gets every key under prefixes at one revision: a linearizable transaction of
// gets, and, for a name too deep for one transaction, more transactions read at the
// first one's revision.
func (l *Locks) read(ctx context.Context, prefixes []string) (*index, int64, error) {
	x := newIndex()
	var rev int64
	for len(prefixes) > 0 {
		n := min(len(prefixes), maxTxnOps)
		ops := make([]clientv3.Op, n)
		for i, p := range prefixes[:n] {
			opts := []clientv3.OpOption{clientv3.WithPrefix()}
			if rev > 0 {
				opts = append(opts, clientv3.WithRev(rev))
			}
			ops[i] = clientv3.OpGet(p, opts...)
		}
		resp, err := l.c.cli.Txn(ctx).Then(ops...).Commit()
		if err != nil {
			return nil, 0, err
		}
		if rev == 0 {
			rev = resp.Header.Revision
		}
		for _, r := range resp.Responses {
			addKVs(x, r.GetResponseRange().Kvs...)
		}
		prefixes = prefixes[n:]
	}
	return x, rev, nil
}

// caughtUp waits until the cache has applied revision rev, or ctx ends.
//
// It does not ask etcd for a progress notification (RequestProgress): before etcd
// 3.4.24 and 3.5.8 a requested notification is sent outside the order of the watch's
// events, so it can announce a revision whose events are still on their way
// (etcd-io/etcd#15220). A revision that no event under the cluster's prefix brings
// (a write elsewhere in a shared etcd) is therefore not awaited for long: the caller
// reads etcd after catchUp.
func (l *Locks) caughtUp(ctx context.Context, rev int64) bool {
	for {
		l.mu.RLock()
		have, advanced := l.rev, l.advanced
		l.mu.RUnlock()
		if have >= rev {
			return true
		}
		select {
		case <-advanced:
		case <-ctx.Done():
			return false
		}
	}
}

// list replaces the cache with the locks in etcd now.
func (l *Locks) list(ctx context.Context) error {
	resp, err := l.c.cli.Get(ctx, l.c.Key("lock/"), clientv3.WithPrefix())
	if err != nil {
		return Unavailable(err)
	}
	x := newIndex()
	addKVs(x, resp.Kvs...)
	l.mu.Lock()
	l.cache = x
	l.advanceLocked(resp.Header.Revision)
	l.mu.Unlock()
	return nil
}

// watch keeps the cache current until ctx ends. It watches the cluster's whole
// prefix, so that the revision of every transaction of the cluster arrives even when
// no lock changed. If the watch ends (history compacted, no leader, an error) it
// lists the locks again and watches from there.
func (l *Locks) watch(ctx context.Context) {
	defer close(l.done)
	backoff := 50 * time.Millisecond
	for ctx.Err() == nil && l.c.cli.Ctx().Err() == nil {
		l.mu.RLock()
		from := l.rev + 1
		l.mu.RUnlock()
		wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
		lockPrefix := l.c.Key("lock/")
		for wr := range l.c.cli.Watch(wctx, l.c.Key(""), clientv3.WithPrefix(), clientv3.WithRev(from), clientv3.WithProgressNotify()) {
			if wr.Err() != nil {
				break
			}
			l.mu.Lock()
			var rev int64
			if wr.IsProgressNotify() {
				// A periodic notification goes through the watch's own queue, and
				// only to a watch that has sent everything before it.
				rev = wr.Header.Revision
			}
			for _, ev := range wr.Events {
				// A watch catching up sends the current revision in the header while
				// more events may follow, so trust only the events' own revisions.
				rev = ev.Kv.ModRevision
				if !strings.HasPrefix(string(ev.Kv.Key), lockPrefix) {
					continue
				}
				if ev.Type == clientv3.EventTypeDelete {
					l.cache.del(string(ev.Kv.Key))
				} else {
					addKVs(l.cache, ev.Kv)
				}
			}
			l.advanceLocked(rev)
			l.mu.Unlock()
			backoff = 50 * time.Millisecond
		}
		cancel()
		for ctx.Err() == nil && l.c.cli.Ctx().Err() == nil {
			lctx, cancel := Ctx(ctx)
			err := l.list(lctx)
			cancel()
			if err == nil {
				break
			}
			select {
			case <-ctx.Done():
			case <-time.After(backoff):
			}
			backoff = min(2*backoff, 2*time.Second)
		}
	}
}

func (l *Locks) advanceLocked(rev int64) {
	if rev > l.rev {
		l.rev = rev
		close(l.advanced)
		l.advanced = make(chan struct{})
	}
}

// live counts the cache's live locks, for MaxLocks.
func (l *Locks) live() int {
	now := l.now()
	l.mu.RLock()
	defer l.mu.RUnlock()
	n := 0
	for _, e := range l.cache.byKey {
		if e.lock.Expires.After(now) {
			n++
		}
	}
	return n
}

// deleteExpired deletes the expired locks of x still in etcd (each only if
// unchanged), revokes their leases, and says how many it found.
func (l *Locks) deleteExpired(ctx context.Context, x *index, now time.Time) (int, error) {
	n := 0
	for _, e := range x.byKey {
		if e.lock.Expires.After(now) {
			continue
		}
		n++
		_, err := l.c.cli.Txn(ctx).If(clientv3.Compare(clientv3.ModRevision(e.key), "=", e.modRev)).
			Then(clientv3.OpDelete(e.key)).Commit()
		if err != nil {
			return n, err
		}
		l.revoke(e.lease)
	}
	return n, nil
}

// revoke revokes a lease whose key is gone or was never put, in the background so
// that no request waits for it, best-effort and briefly: an unrevoked lease expires
// by itself.
func (l *Locks) revoke(id clientv3.LeaseID) {
	if id == clientv3.NoLease {
		return
	}
	l.revokes.Go(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_, _ = l.c.cli.Revoke(ctx, id)
	})
}

// conflictPrefixes are the prefixes under which a lock conflicting with a new lock
// on root would be: any lock at root, any depth-infinity lock at an ancestor, and for
// a depth-infinity request any lock below root. A shared request conflicts with
// exclusive locks only. Their number is 2 per level of root plus 2 to 4.
func (l *Locks) conflictPrefixes(root string, depth int, shared bool) []string {
	kinds := []string{"x", "s"}
	if shared {
		kinds = kinds[:1]
	}
	var out []string
	for _, kind := range kinds {
		out = append(out, l.atPrefix(kind, root))
		for a := root; a != "/"; {
			a = backend.Parent(a)
			out = append(out, l.infPrefix(kind, a))
		}
		if depth == backend.DepthInfinity {
			out = append(out, l.belowPrefix(kind, root))
		}
	}
	return out
}

func (l *Locks) key(lk *locks.Lock) string {
	return l.c.Key("lock/", kindOf(lk.Shared), "/", lk.Root, "\x00", depthOf(lk.Depth), "\x00", lk.Token)
}

func (l *Locks) atPrefix(kind, root string) string { return l.c.Key("lock/", kind, "/", root, "\x00") }

func (l *Locks) infPrefix(kind, root string) string {
	return l.c.Key("lock/", kind, "/", root, "\x00i\x00")
}

// belowPrefix holds the locks rooted below name; for "/" it holds all of them.
func (l *Locks) belowPrefix(kind, name string) string {
	if name == "/" {
		return l.c.Key("lock/", kind, "/")
	}
	return l.c.Key("lock/", kind, "/", name, "/")
}

func kindOf(shared bool) string {
	if shared {
		return "s"
	}
	return "x"
}

func depthOf(depth int) string {
	if depth == backend.DepthInfinity {
		return "i"
	}
	return "0"
}

// grant is locks.Manager's: def when none was asked for, MaxTimeout for Infinite,
// never more than MaxTimeout.
func (l *Locks) grant(d, def time.Duration) time.Duration {
	switch {
	case d == 0:
		return def
	case d < 0 || d > l.maxTimeout:
		return l.maxTimeout
	}
	return d
}

// ttl is a lease TTL covering d: whole seconds, rounded up.
func ttl(d time.Duration) int64 { return max(int64((d+time.Second-1)/time.Second), 1) }

// failed maps an etcd error to coord.ErrUnavailable, unless the request's own
// context was canceled.
func failed(ctx context.Context, err error) error {
	if errors.Is(ctx.Err(), context.Canceled) {
		return ctx.Err()
	}
	return Unavailable(err)
}

func validRoot(r string) bool {
	return r == "/" || (strings.HasPrefix(r, "/") && !strings.HasSuffix(r, "/") && !strings.Contains(r, "\x00"))
}

// newToken is "urn:uuid:" and a random (version 4) UUID, as locks.Manager makes them.
func newToken() string {
	var u [16]byte
	_, _ = rand.Read(u[:]) // never fails (crypto/rand)
	u[6] = u[6]&0x0f | 0x40
	u[8] = u[8]&0x3f | 0x80
	return fmt.Sprintf("urn:uuid:%x-%x-%x-%x-%x", u[0:4], u[4:6], u[6:8], u[8:10], u[10:16])
}

// entry is one lock as etcd holds it.
type entry struct {
	lock      locks.Lock
	key       string
	lease     clientv3.LeaseID
	createRev int64 // orders the locks of one root oldest first, as locks.Manager does
	modRev    int64
}

// index holds locks by key, token and root, with the roots sorted so that the roots
// below a name are one run. The cache is one; a read builds a small one.
type index struct {
	byKey   map[string]*entry
	byToken map[string]*entry
	byRoot  map[string][]*entry
	roots   []string
}

func newIndex() *index {
	return &index{byKey: map[string]*entry{}, byToken: map[string]*entry{}, byRoot: map[string][]*entry{}}
}

// addKVs adds or replaces the locks of kvs (the Kvs of a response or event), whose
// type is from a module we do not name. A value that does not decode is skipped:
// nothing but this file writes under lock/.
func addKVs[KV interface {
	GetKey() []byte
	GetValue() []byte
	GetLease() int64
	GetCreateRevision() int64
	GetModRevision() int64
}](x *index, kvs ...KV) {
	for _, kv := range kvs {
		e := &entry{key: string(kv.GetKey()), lease: clientv3.LeaseID(kv.GetLease()), createRev: kv.GetCreateRevision(), modRev: kv.GetModRevision()}
		if json.Unmarshal(kv.GetValue(), &e.lock) != nil || e.lock.Root == "" {
			continue
		}
		x.put(e)
	}
}

func (x *index) put(e *entry) {
	x.del(e.key)
	x.byKey[e.key] = e
	x.byToken[e.lock.Token] = e
	r := e.lock.Root
	if len(x.byRoot[r]) == 0 {
		i, _ := slices.BinarySearch(x.roots, r)
		x.roots = slices.Insert(x.roots, i, r)
	}
	rs := x.byRoot[r]
	i := sort.Search(len(rs), func(i int) bool { return rs[i].createRev > e.createRev })
	x.byRoot[r] = slices.Insert(rs, i, e)
}

func (x *index) del(key string) {
	e := x.byKey[key]
	if e == nil {
		return
	}
	delete(x.byKey, key)
	if x.byToken[e.lock.Token] == e {
		delete(x.byToken, e.lock.Token)
	}
	r := e.lock.Root
	rest := slices.DeleteFunc(x.byRoot[r], func(o *entry) bool { return o == e })
	if len(rest) > 0 {
		x.byRoot[r] = rest
		return
	}
	delete(x.byRoot, r)
	if i, ok := slices.BinarySearch(x.roots, r); ok {
		x.roots = slices.Delete(x.roots, i, i+1)
	}
}

// covering returns the locks whose scope holds name (rooted at it, or depth infinity
// at an ancestor), nearest root first, live or not.
func (x *index) covering(name string) []*entry {
	var out []*entry
	for r := name; ; r = backend.Parent(r) {
		for _, e := range x.byRoot[r] {
			if r == name || e.lock.Depth == backend.DepthInfinity {
				out = append(out, e)
			}
		}
		if r == "/" {
			return out
		}
	}
}

// below returns the locks rooted strictly below name, in byte order of their roots.
func (x *index) below(name string) []*entry {
	p := name + "/"
	if name == "/" {
		p = "/"
	}
	var out []*entry
	for i := sort.SearchStrings(x.roots, p); i < len(x.roots) && strings.HasPrefix(x.roots[i], p); i++ {
		if x.roots[i] != name {
			out = append(out, x.byRoot[x.roots[i]]...)
		}
	}
	return out
}

// check is locks.Manager.Check over x, which holds every lock covering name (and,
// with infinite, every lock below it): the nearest lock that the tokens, submitted by
// principal, do not satisfy.
func check(x *index, now time.Time, principal, name string, infinite bool, tokens []string) error {
	for _, e := range x.covering(name) {
		if e.lock.Expires.After(now) && !satisfied(x, e, name, principal, tokens, now) {
			return lockedBy(&e.lock)
		}
	}
	if infinite {
		for _, e := range x.below(name) {
			if e.lock.Expires.After(now) && !satisfied(x, e, e.lock.Root, principal, tokens, now) {
				return lockedBy(&e.lock)
			}
		}
	}
	return nil
}

// satisfied: e's own token from e's principal, or for a shared lock the token of
// another live shared lock of the principal covering at (RFC 4918 §6.2, §6.4). Such
// a lock covers at, so it is in x too.
func satisfied(x *index, e *entry, at, principal string, tokens []string, now time.Time) bool {
	for _, t := range tokens {
		te := x.byToken[t]
		if te == nil || te.lock.Principal != principal || !te.lock.Expires.After(now) {
			continue
		}
		if te == e || (e.lock.Shared && te.lock.Shared && covers(&te.lock, at)) {
			return true
		}
	}
	return false
}

// conflict returns a live lock of x that conflicts with nl, nearest first, or nil.
func conflict(x *index, nl *locks.Lock, now time.Time) *entry {
	cands := x.covering(nl.Root)
	if nl.Depth == backend.DepthInfinity {
		cands = append(cands, x.below(nl.Root)...)
	}
	for _, e := range cands {
		if e.lock.Expires.After(now) && !(e.lock.Shared && nl.Shared) {
			return e
		}
	}
	return nil
}

// owned is the live lock named by token if it covers name and belongs to principal,
// else locks.ErrNoSuchLock or locks.ErrNotOwner.
func owned(x *index, name, token, principal string, now time.Time) (entry, error) {
	e := x.byToken[token]
	if e == nil || !e.lock.Expires.After(now) || !covers(&e.lock, name) {
		return entry{}, locks.ErrNoSuchLock
	}
	if e.lock.Principal != principal {
		return entry{}, locks.ErrNotOwner
	}
	return *e, nil
}

func covers(l *locks.Lock, name string) bool {
	return name == l.Root || (l.Depth == backend.DepthInfinity && backend.Within(name, l.Root))
}

func lockedBy(l *locks.Lock) error { return &locks.LockedError{Root: l.Root, Shared: l.Shared} }

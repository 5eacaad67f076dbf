package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"

	"safedav/coord"
	"safedav/server/idem"
)

// Idempotency records live in two keys per principal and key:
//
//	idem/<principal>\x00<key>      the record: a reservation, then the response, on a
//	                               retention lease (they outlive the replica)
//	idem-run/<principal>\x00<key>  the request running now, on its replica's session
//	                               lease (it dies with the replica)
//
// What Begin reads from the two, in one transaction, decides every answer:
//
//	run, no record       in progress, not yet reserved; if its replica dies the
//	                     run vanishes and the key is free, as nothing was applied
//	run and record       in progress, reserved
//	reserved record only the replica died (or lost its session) between Reserve
//	                     and Done: the outcome is unknown (idem.Record.Unknown)
//	response record      replay it
//
// Two keys rather than one that moves from the session lease to a retention lease
// at Reserve: with one, "its replica died after Reserve" could only be told from
// "still running" by a second read (is the owner's session alive?); here the run
// itself is the owner's liveness, read in the same transaction.
//
// Unlike idem.Store (MaxKeys), the number of records is bounded only by the write
// rate over the retention; etcd's space quota is the limit.
//
// A principal is escaped ("%" → "%25", NUL → "%00") so that the NUL before the key,
// which never holds one, is the only one and a principal's keys share a prefix.
//
// Round trips: Begin 1 (plus 1 the first time after a session ended, and 1 when it
// takes over a record past its retention that etcd has not dropped yet); Reserve,
// Done and Abort 1 each, plus one lease grant per replica per retention span (see
// retentionLeases). A transaction has at most 4 comparisons and 7 operations,
// nested ones included: a constant, far below etcd's limit of 128.

// Idempotency returns the replicas' shared idempotency records, kept for retention
// (idem.DefaultRetention if ≤ 0), with the semantics of idem.Store: Begin, Reserve
// and Done fail with an error matching coord.ErrUnavailable when etcd does not answer
// within coord.Deadline. The store holds no state of its own beyond a lease cache, so
// several may be used at once.
func (c *Cluster) Idempotency(retention time.Duration) coord.Idempotency {
	return c.idempotency(retention, time.Now)
}

func (c *Cluster) idempotency(retention time.Duration, now func() time.Time) *idemStore {
	if retention <= 0 {
		retention = idem.DefaultRetention
	}
	return &idemStore{c: c, retention: retention, now: now, leases: newRetentionLeases(c.cli, retention)}
}

type idemStore struct {
	c         *Cluster
	retention time.Duration
	now       func() time.Time
	leases    *retentionLeases
}

// idemValue is what both keys hold, as JSON (readable with etcdctl). The run holds
// the fingerprint, so that a reuse of the key while it runs is told apart.
type idemValue struct {
	Method  string `json:"method"`
	Path    string `json:"path"`
	Detail  string `json:"detail,omitempty"`
	Replica string `json:"replica"`
	// Pending marks the run; Reserved a record whose response is not stored yet.
	Pending  bool              `json:"pending,omitempty"`
	Reserved bool              `json:"reserved,omitempty"`
	Status   int               `json:"status,omitempty"`
	Header   map[string]string `json:"header,omitempty"`
	Body     []byte            `json:"body,omitempty"`
	// Created is when the record was reserved or stored; retention counts from it.
	Created time.Time `json:"created,omitzero"`
}

// The bounds of idem's log, which Done keeps so that both stores refuse the same
// records.
const (
	maxIdemHeader = 8 << 10
	maxIdemValue  = 64 << 10
)

func (s *idemStore) keys(principal, key string) (rec, run string) {
	k := strings.NewReplacer("%", "%25", "\x00", "%00").Replace(principal) + "\x00" + key
	return s.c.Key("idem/", k), s.c.Key("idem-run/", k)
}

// maxBeginTries bounds Begin's transactions: each retry follows a change by another
// replica, so more than a few means the key is being fought over.
const maxBeginTries = 4

// Begin is idem.Store.Begin across the replicas.
func (s *idemStore) Begin(ctx context.Context, key string, fp idem.Fingerprint) (*idem.Record, coord.Pending, error) {
	if !validIdemKey(key) {
		return nil, nil, idem.ErrBadKey
	}
	// Values are stored as JSON, which turns invalid UTF-8 into U+FFFD; so does the
	// fingerprint, so that it stays equal to itself (as idem.Store does).
	fp = idem.Fingerprint{Principal: jsonSafe(fp.Principal), Method: jsonSafe(fp.Method), Path: jsonSafe(fp.Path), Detail: jsonSafe(fp.Detail)}
	recKey, runKey := s.keys(fp.Principal, key)
	cctx, cancel := Ctx(ctx)
	defer cancel()
	sess, err := s.c.Session(cctx)
	if err != nil {
		return nil, nil, err
	}
	run, err := json.Marshal(idemValue{Method: fp.Method, Path: fp.Path, Detail: fp.Detail, Replica: s.c.id, Pending: true})
	if err != nil {
		return nil, nil, err
	}
	// The run is taken only where there is neither a run nor a record, or, after a
	// record was seen past its retention, in place of that very record.
	noRun := clientv3.Compare(clientv3.CreateRevision(runKey), "=", 0)
	putRun := clientv3.OpPut(runKey, string(run), clientv3.WithLease(sess.Lease()))
	fresh := []clientv3.Cmp{noRun, clientv3.Compare(clientv3.CreateRevision(recKey), "=", 0)}
	cond, then := fresh, []clientv3.Op{putRun}
	for range maxBeginTries {
		resp, err := s.c.cli.Txn(cctx).
			If(cond...).
			Then(then...).
			Else(clientv3.OpGet(recKey), clientv3.OpGet(runKey)).
			Commit()
		if err != nil {
			return nil, nil, Unavailable(err)
		}
		coord.ScopeOf(ctx).Observe(resp.Header.Revision)
		if resp.Succeeded {
			return nil, &idemPending{s: s, ctx: ctx, sess: sess, fp: fp, key: key, recKey: recKey, runKey: runKey, runRev: resp.Header.Revision}, nil
		}
		recKVs, runKVs := resp.Responses[0].GetResponseRange().Kvs, resp.Responses[1].GetResponseRange().Kvs
		if len(runKVs) > 0 {
			v, err := decodeIdem(runKVs[0].Value)
			if err != nil {
				return nil, nil, err
			}
			if !v.matches(fp) {
				return nil, nil, idem.ErrKeyReused
			}
			return nil, nil, idem.ErrInProgress
		}
		if len(recKVs) == 0 {
			// The record seen past its retention went away since: as if new.
			cond, then = fresh, []clientv3.Op{putRun}
			continue
		}
		v, err := decodeIdem(recKVs[0].Value)
		if err != nil {
			return nil, nil, err
		}
		// etcd drops a record up to one lease span after its retention (and later
		// still after a leader change); the clock decides, as in idem.Store.
		if s.now().Sub(v.Created) >= s.retention {
			cond = []clientv3.Cmp{noRun, clientv3.Compare(clientv3.ModRevision(recKey), "=", recKVs[0].ModRevision)}
			then = []clientv3.Op{clientv3.OpDelete(recKey), putRun}
			continue
		}
		if !v.matches(fp) {
			return nil, nil, idem.ErrKeyReused
		}
		if v.Reserved {
			return &idem.Record{Created: v.Created, Detail: v.Detail, Unknown: true}, nil, nil
		}
		return &idem.Record{Status: v.Status, Header: v.Header, Body: v.Body, Created: v.Created, Detail: v.Detail}, nil, nil
	}
	return nil, nil, idem.ErrInProgress
}

func (v *idemValue) matches(fp idem.Fingerprint) bool {
	return v.Method == fp.Method && v.Path == fp.Path && (v.Detail == "" || fp.Detail == "" || v.Detail == fp.Detail)
}

func decodeIdem(b []byte) (idemValue, error) {
	var v idemValue
	if err := json.Unmarshal(b, &v); err != nil {
		return v, fmt.Errorf("cluster: malformed idempotency record: %w", err)
	}
	return v, nil
}

// idemPending is a key whose run this replica holds. Its mutex orders Reserve, Done
// and Abort, which the server calls from one goroutine anyway.
type idemPending struct {
	s              *idemStore
	ctx            context.Context // the request's
	sess           *concurrency.Session
	fp             idem.Fingerprint
	key            string
	recKey, runKey string
	runRev         int64 // ModRevision of our run

	mu       sync.Mutex
	recRev   int64 // ModRevision of our reservation, 0 before Reserve
	finished bool
}

var (
	errIdemFinished = errors.New("cluster: idempotency Done or Abort already called")
	// errIdemLost is a run or reservation that is no longer ours: the session ended
	// (so the run went with it) or the record outlived its retention.
	errIdemLost = errors.New("cluster: idempotency reservation lost (session ended or retention passed)")
)

// Reserve puts the reservation on a retention lease, so that it outlives this
// replica: if the replica dies before Done, a retry is told the outcome is unknown.
// It fails (and the request must not be applied) when etcd does not answer or the
// run is no longer ours, both as coord.ErrUnavailable.
func (p *idemPending) Reserve() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.finished {
		return errIdemFinished
	}
	if p.recRev != 0 {
		return nil
	}
	v := idemValue{Method: p.fp.Method, Path: p.fp.Path, Detail: p.fp.Detail, Replica: p.s.c.id, Reserved: true, Created: p.s.now().Round(0)}
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	ctx, cancel := Ctx(p.ctx)
	defer cancel()
	resp, err := p.s.leases.put(ctx, func(lease clientv3.LeaseID) (*clientv3.TxnResponse, error) {
		return p.s.c.cli.Txn(ctx).
			If(clientv3.Compare(clientv3.ModRevision(p.runKey), "=", p.runRev)).
			Then(clientv3.OpPut(p.recKey, string(b), clientv3.WithLease(lease))).
			Commit()
	})
	if err != nil {
		return err
	}
	if !resp.Succeeded {
		return Unavailable(errIdemLost)
	}
	coord.ScopeOf(p.ctx).Observe(resp.Header.Revision)
	p.recRev = resp.Header.Revision
	return nil
}

// Done stores rec in place of the reservation, as idem.Pending.Done does: a record
// out of bounds is refused and the key released. When etcd does not answer, the
// error matches coord.ErrUnavailable and Done keeps trying in the background while
// the session lives, so that the key does not stay "in progress"; if the session
// ends first, a retry is told the outcome is unknown (or, without Reserve, applies).
func (p *idemPending) Done(rec idem.Record) error {
	if rec.Detail == "" {
		rec.Detail = p.fp.Detail
	}
	v := idemValue{
		Method: p.fp.Method, Path: p.fp.Path, Detail: jsonSafe(rec.Detail), Replica: p.s.c.id,
		Status: rec.Status, Header: rec.Header, Body: rec.Body, Created: p.s.now().Round(0),
	}
	b, err := v.encode()
	if err != nil {
		p.Abort()
		return err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.finished {
		return errIdemFinished
	}
	p.finished = true
	own := clientv3.Compare(clientv3.ModRevision(p.runKey), "=", p.runRev)
	if p.recRev != 0 {
		own = clientv3.Compare(clientv3.ModRevision(p.recKey), "=", p.recRev)
	}
	done := func(ctx context.Context) (bool, error) {
		resp, err := p.s.leases.put(ctx, func(lease clientv3.LeaseID) (*clientv3.TxnResponse, error) {
			put := []clientv3.Op{clientv3.OpPut(p.recKey, string(b), clientv3.WithLease(lease)), clientv3.OpDelete(p.runKey)}
			// A reservation that vanished (its lease lost, or a request that ran
			// past the retention) while the run is still ours is recorded anyway:
			// the write was applied, and freeing the key would let a retry apply
			// it again.
			gone := []clientv3.Cmp{
				clientv3.Compare(clientv3.CreateRevision(p.recKey), "=", 0),
				clientv3.Compare(clientv3.ModRevision(p.runKey), "=", p.runRev),
			}
			return p.s.c.cli.Txn(ctx).If(own).Then(put...).
				Else(clientv3.OpTxn(gone, put, []clientv3.Op{p.dropRun()})).
				Commit()
		})
		if err != nil {
			return false, err
		}
		coord.ScopeOf(p.ctx).Observe(resp.Header.Revision)
		return resp.Succeeded || resp.Responses[0].GetResponseTxn().GetSucceeded(), nil
	}
	return p.do(done)
}

// Abort releases the key, so that a retry runs the request again; after Reserve it
// deletes the reservation too, as the request was not applied. It is a no-op after
// Done or Abort. When etcd does not answer it keeps trying in the background while
// the session lives (after that the run is gone anyway, and a reservation left
// behind reads as "outcome unknown", which is safe).
func (p *idemPending) Abort() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.finished {
		return
	}
	p.finished = true
	own, ops := clientv3.Compare(clientv3.ModRevision(p.runKey), "=", p.runRev), []clientv3.Op{clientv3.OpDelete(p.runKey)}
	if p.recRev != 0 {
		own = clientv3.Compare(clientv3.ModRevision(p.recKey), "=", p.recRev)
		ops = append(ops, clientv3.OpDelete(p.recKey))
	}
	_ = p.do(func(ctx context.Context) (bool, error) {
		resp, err := p.s.c.cli.Txn(ctx).If(own).Then(ops...).Else(p.dropRun()).Commit()
		if err != nil {
			return false, Unavailable(err)
		}
		return resp.Succeeded, nil
	})
}

// dropRun deletes our run if it is still there: for when the reservation is not
// ours any more, so that the run does not say "in progress" while this replica lives.
func (p *idemPending) dropRun() clientv3.Op {
	return clientv3.OpTxn([]clientv3.Cmp{clientv3.Compare(clientv3.ModRevision(p.runKey), "=", p.runRev)},
		[]clientv3.Op{clientv3.OpDelete(p.runKey)}, nil)
}

// do runs the last transaction of a request, which must happen even if the client
// went away. If etcd does not answer it returns the error and tries again in the
// background until it does, or the session that holds the run ends.
func (p *idemPending) do(f func(context.Context) (bool, error)) error {
	ctx, cancel := Ctx(context.WithoutCancel(p.ctx))
	ok, err := f(ctx)
	cancel()
	if err == nil && !ok {
		return errIdemLost
	}
	if err != nil {
		go p.retry(f)
	}
	return err
}

// retryBackoff bounds the wait between background retries.
var retryBackoff = [2]time.Duration{100 * time.Millisecond, 2 * time.Second}

func (p *idemPending) retry(f func(context.Context) (bool, error)) {
	wait := retryBackoff[0]
	for {
		select {
		case <-p.sess.Done():
			return
		case <-time.After(wait):
		}
		ctx, cancel := Ctx(p.sess.Ctx())
		_, err := f(ctx)
		cancel()
		if err == nil || errors.Is(err, context.Canceled) {
			return
		}
		wait = min(2*wait, retryBackoff[1])
	}
}

// encode checks v against the bounds of idem's log (status, body, headers, size).
func (v *idemValue) encode() ([]byte, error) {
	if v.Status < 100 || v.Status > 599 {
		return nil, fmt.Errorf("cluster: idempotency record with status %d", v.Status)
	}
	if len(v.Body) > idem.MaxBody {
		return nil, fmt.Errorf("cluster: idempotency record body of %d bytes", len(v.Body))
	}
	n := 0
	for k, x := range v.Header {
		n += len(k) + len(x)
	}
	if n > maxIdemHeader {
		return nil, fmt.Errorf("cluster: idempotency record headers of %d bytes", n)
	}
	if len(v.Header) == 0 {
		v.Header = nil
	} else {
		v.Header = maps.Clone(v.Header)
	}
	b, err := json.Marshal(v)
	if err == nil && len(b) >= maxIdemValue {
		err = fmt.Errorf("cluster: idempotency record of %d bytes", len(b))
	}
	return b, err
}

// retentionLeases hands out the leases records are put under. A lease per record
// would cost a grant per request and leave etcd tracking one lease per record kept
// (millions over a day of writes), so a replica reuses one lease for every record it
// puts within a span of time, with a TTL of retention plus that span: each record
// lives at least its retention and at most one span longer, and Begin's clock check
// cuts the replay at exactly retention. The span is a tenth of the retention, at
// least a second, at most a minute (or a 1440th of the retention when that is
// longer), so a replica has at most about 1440 leases alive (10 for a short one).
type retentionLeases struct {
	cli  *clientv3.Client
	ttl  int64 // seconds
	span time.Duration
	sem  chan struct{} // held while granting; a channel so waiters give up with ctx

	mu    sync.Mutex
	id    clientv3.LeaseID
	until time.Time // id takes records put before this time
}

func newRetentionLeases(cli *clientv3.Client, retention time.Duration) *retentionLeases {
	span := min(max(retention/10, time.Second), max(time.Minute, retention/1440))
	return &retentionLeases{cli: cli, ttl: int64((retention + span + time.Second - 1) / time.Second), span: span, sem: make(chan struct{}, 1)}
}

// put runs txn with the current lease. If the transaction fails, the lease is
// forgotten (etcd may have lost it) and the next call grants another. Errors match
// coord.ErrUnavailable.
func (l *retentionLeases) put(ctx context.Context, txn func(clientv3.LeaseID) (*clientv3.TxnResponse, error)) (*clientv3.TxnResponse, error) {
	id, err := l.get(ctx)
	if err != nil {
		return nil, err
	}
	resp, err := txn(id)
	if err != nil {
		l.mu.Lock()
		if l.id == id && ctx.Err() == nil {
			l.id = clientv3.NoLease
		}
		l.mu.Unlock()
		return nil, Unavailable(err)
	}
	return resp, nil
}

func (l *retentionLeases) current() (clientv3.LeaseID, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.id, l.id != clientv3.NoLease && time.Now().Before(l.until)
}

func (l *retentionLeases) get(ctx context.Context) (clientv3.LeaseID, error) {
	if id, ok := l.current(); ok {
		return id, nil
	}
	select {
	case l.sem <- struct{}{}:
	case <-ctx.Done():
		return clientv3.NoLease, Unavailable(ctx.Err())
	}
	defer func() { <-l.sem }()
	if id, ok := l.current(); ok {
		return id, nil
	}
	// The span counts from before the grant, so the lease, which counts from when
	// etcd granted it, outlives every record put under it by their retention.
	start := time.Now()
	resp, err := l.cli.Grant(ctx, l.ttl)
	if err != nil {
		return clientv3.NoLease, Unavailable(err)
	}
	l.mu.Lock()
	l.id, l.until = resp.ID, start.Add(l.span)
	l.mu.Unlock()
	return resp.ID, nil
}

var (
	_ coord.Idempotency = (*idemStore)(nil)
	_ coord.Pending     = (*idemPending)(nil)
)

// validIdemKey is idem's rule: 1–idem.MaxKeyLen bytes of visible ASCII.
func validIdemKey(key string) bool {
	if key == "" || len(key) > idem.MaxKeyLen {
		return false
	}
	for i := 0; i < len(key); i++ {
		if key[i] < 0x21 || key[i] > 0x7e {
			return false
		}
	}
	return true
}

// jsonSafe replaces each byte of invalid UTF-8 with U+FFFD, as encoding/json does.
func jsonSafe(s string) string {
	if utf8.ValidString(s) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:]) // U+FFFD for a bad byte
		b.WriteRune(r)
		i += n
	}
	return b.String()
}

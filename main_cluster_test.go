package main

import (
	"bufio"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"safedav/internal/etcdtest"
)

// A cluster of the tests: three replicas over one bucket prefix, coordinated by a
// real etcd, behind a proxy that sends each request to the next live replica in
// turn, as a load balancer without stickiness does.
type testCluster struct {
	etcd     *etcdtest.Server
	replicas []*proc
	args     []string // a replica's flags, to start another
	env      []string
	proxy    *httptest.Server

	mu   sync.Mutex
	live []*url.URL
	next atomic.Uint64
}

// sessionTTL is the replicas' etcd session TTL in the tests: how long after a kill
// what the replica held is released.
const sessionTTL = 2 * time.Second

func startCluster(t *testing.T, n int, extra ...string) *testCluster {
	t.Helper()
	_, _, _, flags := s3Test(t)
	etcd := etcdtest.Start(t)
	var b [6]byte
	rand.Read(b[:])
	tc := &testCluster{etcd: etcd,
		env: []string{"SAFEDAV_S3_ACCESS_KEY=" + os.Getenv("SAFEDAV_TEST_S3_ACCESS_KEY"),
			"SAFEDAV_S3_SECRET_KEY=" + os.Getenv("SAFEDAV_TEST_S3_SECRET_KEY")},
		args: append(append(flags, "--etcd-endpoints", etcd.Endpoint(), "--etcd-prefix", "/t"+hex.EncodeToString(b[:])+"/",
			"--etcd-session-ttl", sessionTTL.String(), "--log-level", "warn"), extra...),
	}
	for range n {
		tc.add(t)
	}
	tc.proxy = httptest.NewServer(&httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			tc.mu.Lock()
			u := tc.live[tc.next.Add(1)%uint64(len(tc.live))]
			tc.mu.Unlock()
			r.SetURL(u)
			r.Out.Host = r.In.Host // Destination headers name the proxy
		},
	})
	t.Cleanup(tc.proxy.Close)
	return tc
}

// add starts one more replica and puts it behind the proxy.
func (tc *testCluster) add(t *testing.T) *proc {
	t.Helper()
	p := startServeEnv(t, tc.env, tc.args...)
	u, _ := url.Parse(p.url)
	tc.mu.Lock()
	tc.replicas = append(tc.replicas, p)
	tc.live = append(tc.live, u)
	tc.mu.Unlock()
	return p
}

// kill9 kills replica i as a crash would and takes it out of the proxy's rotation, as
// a load balancer's health check does.
func (tc *testCluster) kill9(t *testing.T, i int) {
	t.Helper()
	p := tc.replicas[i]
	p.kill9(t)
	tc.mu.Lock()
	defer tc.mu.Unlock()
	for j, u := range tc.live {
		if u.String() == p.url {
			tc.live = append(tc.live[:j], tc.live[j+1:]...)
			break
		}
	}
}

// via is a proc that sends its requests through the proxy.
func (tc *testCluster) via() *proc { return &proc{url: tc.proxy.URL + "/"} }

func status(t *testing.T, want int, r *http.Response, body string) {
	t.Helper()
	if r.StatusCode != want {
		t.Fatalf("%s %s: %d, want %d\n%s", r.Request.Method, r.Request.URL.Path, r.StatusCode, want, body)
	}
}

// TestClusterLitmus: litmus passes through the round-robin proxy, every request of
// it landing on another replica than the one before.
func TestClusterLitmus(t *testing.T) {
	bin, err := exec.LookPath("litmus")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("litmus is not installed")
		}
		t.Skip("litmus is not installed")
	}
	tc := startCluster(t, 3)
	cmd := exec.Command(bin, "-k", tc.proxy.URL+"/")
	cmd.Dir = t.TempDir()
	out, err := cmd.CombinedOutput()
	sum := regexp.MustCompile("(?m)^<- summary for `([a-z]+)': of (\\d+) tests run: (\\d+) passed, (\\d+) failed")
	passed, failed := 0, 0
	for _, m := range sum.FindAllStringSubmatch(string(out), -1) {
		p, _ := strconv.Atoi(m[3])
		f, _ := strconv.Atoi(m[4])
		passed, failed = passed+p, failed+f
	}
	skipped := regexp.MustCompile(`(?m)-> \d+ tests? were skipped`).FindString(string(out))
	t.Logf("litmus through 3 replicas: %d passed, %d failed", passed, failed)
	if err != nil || failed != 0 || skipped != "" || passed < 100 {
		dbg, _ := os.ReadFile(filepath.Join(cmd.Dir, "debug.log"))
		if len(dbg) > 8000 {
			dbg = dbg[len(dbg)-8000:]
		}
		t.Fatalf("litmus: %v, %d passed, %d failed, %s\n%s\n%s", err, passed, failed, skipped, out, dbg)
	}
}

// TestClusterLocks: a lock granted by one replica is enforced by the others at once,
// and any replica refreshes or removes it.
func TestClusterLocks(t *testing.T) {
	tc := startCluster(t, 3)
	a, b, c := tc.replicas[0], tc.replicas[1], tc.replicas[2]
	for round := range 20 {
		name := fmt.Sprintf("doc%d.txt", round)
		r, body := a.do(t, "PUT", name, "v1")
		status(t, http.StatusCreated, r, body)
		r, body = a.do(t, "LOCK", name, lockBody, "Timeout", "Second-600")
		status(t, http.StatusOK, r, body)
		token := r.Header.Get("Lock-Token")
		// At once, on the others: no write without the token, no second lock.
		r, body = b.do(t, "PUT", name, "v2")
		status(t, http.StatusLocked, r, body)
		r, body = c.do(t, "LOCK", name, lockBody)
		status(t, http.StatusLocked, r, body)
		r, body = c.do(t, "DELETE", name, "")
		status(t, http.StatusLocked, r, body)
		// With it, anywhere.
		r, body = c.do(t, "PUT", name, "v2", "If", "("+token+")")
		status(t, http.StatusNoContent, r, body)
		r, body = b.do(t, "LOCK", name, "", "If", "("+token+")", "Timeout", "Second-900")
		status(t, http.StatusOK, r, body)
		_, body = c.do(t, "PROPFIND", name, "", "Depth", "0")
		if !strings.Contains(body, strings.Trim(token, "<>")) {
			t.Fatalf("lockdiscovery on another replica lacks the lock:\n%s", body)
		}
		r, body = b.do(t, "UNLOCK", name, "", "Lock-Token", token)
		status(t, http.StatusNoContent, r, body)
		r, body = a.do(t, "PUT", name, "v3")
		status(t, http.StatusNoContent, r, body)
	}
}

// TestClusterIdempotency: the retry of a write lands on another replica and gets the
// first response, not a second application.
func TestClusterIdempotency(t *testing.T) {
	tc := startCluster(t, 3, "--overwrite-policy", "rename")
	a, b, c := tc.replicas[0], tc.replicas[1], tc.replicas[2]
	r, body := a.do(t, "PUT", "inbox.txt", "first")
	status(t, http.StatusCreated, r, body)
	r, body = a.do(t, "PUT", "inbox.txt", "second", "Idempotency-Key", "k-1")
	status(t, http.StatusCreated, r, body)
	loc := r.Header.Get("Location")
	for _, p := range []*proc{b, c, a} {
		r, body = p.do(t, "PUT", "inbox.txt", "second", "Idempotency-Key", "k-1")
		status(t, http.StatusCreated, r, body)
		if r.Header.Get("Idempotent-Replayed") != "true" || r.Header.Get("Location") != loc {
			t.Fatalf("retry on another replica was not replayed: %v", r.Header)
		}
	}
	_, body = b.do(t, "PROPFIND", "", "", "Depth", "1")
	if n := strings.Count(body, "inbox"); n != 2 {
		t.Fatalf("%d files named inbox…, want 2 (the first and one renamed):\n%s", n, body)
	}
	// The same key with another body is refused wherever it lands.
	r, body = c.do(t, "PUT", "inbox.txt", "other", "Idempotency-Key", "k-1")
	status(t, http.StatusUnprocessableEntity, r, body)
}

// slowUpload starts a PUT of name on p whose body hangs after a first chunk; stop
// ends it (the server sees the body end early).
func slowUpload(t *testing.T, p *proc, name string) (stop func()) {
	t.Helper()
	pr, pw := io.Pipe()
	req, _ := http.NewRequest("PUT", p.url+name, pr)
	done := make(chan struct{})
	go func() {
		defer close(done)
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
		}
	}()
	if _, err := pw.Write([]byte("partial")); err != nil {
		t.Fatal(err)
	}
	return func() { pw.CloseWithError(io.ErrUnexpectedEOF); <-done }
}

// waitStatus repeats a request until it answers want, failing after a minute. A
// want of 200 accepts any 2xx.
func waitStatus(t *testing.T, p *proc, want int, method, path, body string, header ...string) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		r, b := p.do(t, method, path, body, header...)
		if r.StatusCode == want || want == http.StatusOK && r.StatusCode/100 == 2 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s %s still answers %d, want %d\n%s", method, path, r.StatusCode, want, b)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestClusterUploadInProgress: an upload of a name in progress on one replica makes a
// second one on another replica 409 upload_in_progress, and a folder MOVE above it
// wait for it (409 namespace_busy) rather than lose it.
func TestClusterUploadInProgress(t *testing.T) {
	tc := startCluster(t, 2)
	a, b := tc.replicas[0], tc.replicas[1]
	r, body := a.do(t, "MKCOL", "dir/", "")
	status(t, http.StatusCreated, r, body)
	// The first upload's registration precedes its body's first byte: wait for it.
	stop := slowUpload(t, a, "dir/big.bin")
	waitStatus(t, b, http.StatusConflict, "PUT", "dir/big.bin", "other")
	r, body = b.do(t, "PUT", "dir/big.bin", "other")
	if !strings.Contains(body, "upload_in_progress") {
		t.Fatalf("second upload: %d\n%s", r.StatusCode, body)
	}
	r, body = b.do(t, "MOVE", "dir/", "", "Destination", b.url+"moved/")
	status(t, http.StatusConflict, r, body)
	if !strings.Contains(body, "namespace_busy") {
		t.Fatalf("folder MOVE during an upload into it:\n%s", body)
	}
	stop()
	// 201 or 204: the PUTs that waited for the first upload to register may have
	// created the file before it did.
	waitStatus(t, b, http.StatusOK, "PUT", "dir/big.bin", "other")
	r, body = b.do(t, "MOVE", "dir/", "", "Destination", b.url+"moved/")
	status(t, http.StatusCreated, r, body)
}

// TestClusterReplicaKilled: a replica killed (SIGKILL) while it holds an upload's
// claim releases it within the session TTL, so nothing stays busy for good; a lock
// granted through it belongs to its client and is still enforced by the others until
// it is unlocked.
func TestClusterReplicaKilled(t *testing.T) {
	tc := startCluster(t, 3)
	a, b := tc.replicas[0], tc.replicas[1]
	r, body := a.do(t, "MKCOL", "dir/", "")
	status(t, http.StatusCreated, r, body)
	r, body = a.do(t, "PUT", "dir/locked.txt", "v1")
	status(t, http.StatusCreated, r, body)
	r, body = a.do(t, "LOCK", "dir/locked.txt", lockBody, "Timeout", "Second-600")
	status(t, http.StatusOK, r, body)
	token := r.Header.Get("Lock-Token")
	slowUpload(t, a, "dir/big.bin")
	waitStatus(t, b, http.StatusConflict, "PUT", "dir/big.bin", "other")

	tc.kill9(t, 0)
	// Within the session TTL (plus etcd's lease check) the upload's claim is gone (201
	// or 204: the PUTs that waited for it to register may have created the file).
	waitStatus(t, b, http.StatusOK, "PUT", "dir/big.bin", "other")
	r, body = b.do(t, "PUT", "dir/locked.txt", "v2")
	status(t, http.StatusLocked, r, body)
	r, body = tc.via().do(t, "UNLOCK", "dir/locked.txt", "", "Lock-Token", token)
	status(t, http.StatusNoContent, r, body)
	r, body = tc.via().do(t, "MOVE", "dir/", "", "Destination", tc.proxy.URL+"/moved/")
	status(t, http.StatusCreated, r, body)
	r, body = tc.via().do(t, "GET", "moved/big.bin", "")
	status(t, http.StatusOK, r, body)
	if body != "other" {
		t.Fatalf("moved/big.bin = %q", body)
	}
}

// TestClusterEtcdDown: with etcd gone, writes answer 503 coordination_unavailable and
// change nothing, reads keep working; once etcd is back the replicas recover by
// themselves.
func TestClusterEtcdDown(t *testing.T) {
	tc := startCluster(t, 2)
	a := tc.replicas[0]
	r, body := a.do(t, "PUT", "kept.txt", "v1")
	status(t, http.StatusCreated, r, body)
	tc.etcd.Stop()
	for _, p := range tc.replicas {
		r, body = p.do(t, "PUT", "kept.txt", "v2")
		status(t, http.StatusServiceUnavailable, r, body)
		if !strings.Contains(body, "coordination_unavailable") || r.Header.Get("Retry-After") == "" {
			t.Fatalf("PUT with etcd down: %v\n%s", r.Header, body)
		}
		r, body = p.do(t, "GET", "kept.txt", "")
		status(t, http.StatusOK, r, body)
		if body != "v1" {
			t.Fatalf("kept.txt = %q after a refused write", body)
		}
		r, body = p.do(t, "PROPFIND", "", "", "Depth", "1")
		status(t, http.StatusMultiStatus, r, body)
		r, body = p.do(t, "LOCK", "kept.txt", lockBody)
		status(t, http.StatusServiceUnavailable, r, body)
	}
	tc.etcd.Restart()
	for _, p := range tc.replicas {
		waitStatus(t, p, http.StatusNoContent, "PUT", "kept.txt", "v3")
	}
}

// TestClusterNoLostUpdates: writers on every replica update one counter with If-Match;
// every acknowledged update is in the final value.
func TestClusterNoLostUpdates(t *testing.T) {
	tc := startCluster(t, 3)
	p := tc.via()
	r, body := p.do(t, "PUT", "counter", "0")
	status(t, http.StatusCreated, r, body)
	const writers, each = 12, 15
	var acked atomic.Int64
	var wg sync.WaitGroup
	for range writers {
		wg.Go(func() {
			for done := 0; done < each; {
				r, err := http.Get(p.url + "counter")
				if err != nil {
					t.Error(err)
					return
				}
				b, _ := io.ReadAll(r.Body)
				r.Body.Close()
				n, _ := strconv.Atoi(string(b))
				req, _ := http.NewRequest("PUT", p.url+"counter", strings.NewReader(strconv.Itoa(n+1)))
				req.Header.Set("If-Match", r.Header.Get("ETag"))
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Error(err)
					return
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				switch resp.StatusCode {
				case http.StatusNoContent:
					acked.Add(1)
					done++
				case http.StatusPreconditionFailed, http.StatusConflict:
				default:
					t.Errorf("PUT: %d", resp.StatusCode)
					return
				}
			}
		})
	}
	wg.Wait()
	_, body = p.do(t, "GET", "counter", "")
	if got := strconv.FormatInt(acked.Load(), 10); body != got {
		t.Fatalf("counter = %s after %s acknowledged increments", body, got)
	}
}

// TestClusterNamespaceRaces: a folder MOVE or DELETE on one replica races an upload
// into the folder on another; an acknowledged upload is always findable where the
// order of the two puts it, and a DELETE that succeeded leaves nothing behind.
func TestClusterNamespaceRaces(t *testing.T) {
	tc := startCluster(t, 2)
	a, b := tc.replicas[0], tc.replicas[1]
	rounds := 40
	if testing.Short() {
		rounds = 10
	}
	bad := 0
	for i := range rounds {
		dir := fmt.Sprintf("r%d/", i)
		for _, name := range []string{dir, dir + "src/"} {
			r, body := a.do(t, "MKCOL", name, "")
			status(t, http.StatusCreated, r, body)
		}
		r, body := a.do(t, "PUT", dir+"src/old.txt", "old")
		status(t, http.StatusCreated, r, body)
		move := i%2 == 0
		var ns, put *http.Response
		var wg sync.WaitGroup
		start := make(chan struct{})
		wg.Go(func() {
			<-start
			if move {
				ns, _ = a.do(t, "MOVE", dir+"src/", "", "Destination", a.url+dir+"dst/")
			} else {
				ns, _ = a.do(t, "DELETE", dir+"src/", "")
			}
		})
		wg.Go(func() { <-start; put, _ = b.do(t, "PUT", dir+"src/new.txt", "new") })
		close(start)
		wg.Wait()
		_, atSrc := b.do(t, "GET", dir+"src/new.txt", "")
		_, atDst := b.do(t, "GET", dir+"dst/new.txt", "")
		srcDir, _ := b.do(t, "PROPFIND", dir+"src/", "", "Depth", "0")
		// The orders: the upload first (then it moves with the folder, or is deleted
		// with it), or the folder operation first (then the upload finds no folder).
		putOK, nsOK := put.StatusCode/100 == 2, ns.StatusCode/100 == 2
		ok := true
		switch {
		case nsOK && srcDir.StatusCode != http.StatusNotFound:
			ok = false // the folder went away, yet it is there
		case move && putOK && nsOK && atDst != "new":
			ok = false // the upload was acknowledged and did not move with its folder
		case putOK && !nsOK && atSrc != "new":
			ok = false // the upload was acknowledged and is not there
		}
		if !ok {
			bad++
			t.Errorf("round %d (%s %d, PUT %d): src/new.txt %q, dst/new.txt %q, src/ %d", i,
				map[bool]string{true: "MOVE", false: "DELETE"}[move], ns.StatusCode, put.StatusCode, atSrc, atDst, srcDir.StatusCode)
		}
	}
	t.Logf("%d rounds, %d explained by no order", rounds, bad)
}

// etcdRequests is the number of requests etcd has answered for its KV service
// (reads, transactions, deletions), from its /metrics. Lease grants are left out: a
// session renewed on a loaded machine is not a cost of the requests measured.
func etcdRequests(t *testing.T, tc *testCluster) int {
	t.Helper()
	resp, err := http.Get("http://" + tc.etcd.Endpoint() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	n := 0
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "grpc_server_handled_total{") || !strings.Contains(line, `grpc_type="unary"`) ||
			!strings.Contains(line, `grpc_service="etcdserverpb.KV"`) {
			continue
		}
		v, err := strconv.ParseFloat(line[strings.LastIndexByte(line, ' ')+1:], 64)
		if err != nil {
			t.Fatalf("metrics line %q: %v", line, err)
		}
		n += int(v)
	}
	return n
}

// TestClusterEtcdCostPerWrite: a GET costs no etcd request, and a PUT (no locks, no
// key) two: the transaction that registers its upload and claims its name before the
// body, and the deletion of both after the response. The lock check and the commit's
// claim are answered from that one transaction. A change that adds a round trip to
// the hot path fails here.
func TestClusterEtcdCostPerWrite(t *testing.T) {
	tc := startCluster(t, 1)
	p := tc.replicas[0]
	const n = 40
	settle := func(want int) int {
		deadline := time.Now().Add(30 * time.Second)
		for {
			got := etcdRequests(t, tc)
			if got >= want || time.Now().After(deadline) {
				return got
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	// The first PUT, and the deletion it sends after its answer, before counting.
	start := etcdRequests(t, tc)
	r, body := p.do(t, "PUT", "hot.txt", "v0")
	status(t, http.StatusCreated, r, body)
	before := settle(start + 2)
	for range n {
		r, body = p.do(t, "GET", "hot.txt", "")
		status(t, http.StatusOK, r, body)
	}
	if got := etcdRequests(t, tc) - before; got != 0 {
		t.Fatalf("%d GETs made %d etcd requests, want 0", n, got)
	}
	for i := range n {
		r, body = p.do(t, "PUT", "hot.txt", strconv.Itoa(i))
		status(t, http.StatusNoContent, r, body)
	}
	settle(before + 2*n)
	time.Sleep(200 * time.Millisecond) // let any extra request show
	got := etcdRequests(t, tc) - before
	t.Logf("%d PUTs: %d etcd requests", n, got)
	if got != 2*n {
		t.Fatalf("%d PUTs made %d etcd requests, want %d (one transaction before the body, one deletion after)", n, got, 2*n)
	}
}

// TestClusterBackToBackPuts: a client's PUTs of one name, each sent once the last is
// answered, never meet their own finished upload (409 upload_in_progress), whichever
// replica each lands on: an upload's end reaches etcd after its response.
func TestClusterBackToBackPuts(t *testing.T) {
	tc := startCluster(t, 2)
	for i := range 100 {
		p := tc.replicas[i%3%2] // A A B, A B A, …: same replica and the other in turn
		r, body := p.do(t, "PUT", "same.txt", strconv.Itoa(i))
		if r.StatusCode/100 != 2 {
			t.Fatalf("PUT %d: %d\n%s", i, r.StatusCode, body)
		}
	}
}

// The cluster flags are refused with a message naming the problem, before anything
// is opened: a local root with --etcd-endpoints, unreachable etcd, half a pair.
func TestServeRejectsClusterFlags(t *testing.T) {
	s3 := []string{"--backend", "s3", "--s3-endpoint", "127.0.0.1:1", "--s3-bucket", "b", "--s3-insecure",
		"--s3-access-key", "k", "--s3-secret-key", "s"}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--etcd-endpoints", "127.0.0.1:1"}, "a local root is served by one process"},
		{append([]string{"--etcd-endpoints", ","}, s3...), "names no endpoint"},
		{append([]string{"--etcd-endpoints", "127.0.0.1:1", "--etcd-user", "u"}, s3...), "--etcd-user and --etcd-password"},
		{append([]string{"--etcd-endpoints", "127.0.0.1:1", "--etcd-cert", "c.pem"}, s3...), "--etcd-cert and --etcd-key"},
		{append([]string{"--etcd-endpoints", "127.0.0.1:1", "--etcd-prefix", "x"}, s3...), "must start with /"},
		{append([]string{"--etcd-endpoints", "127.0.0.1:1", "--etcd-session-ttl", "1s"}, s3...), "at least 2s"},
		{append([]string{"--etcd-endpoints", "127.0.0.1:1"}, s3...), "does not answer"},
	} {
		cmd := command(t, []string{"SAFEDAV_ROOT=" + t.TempDir(), "SAFEDAV_LISTEN=127.0.0.1:0"}, append([]string{"serve"}, tc.args...)...)
		out, err := cmd.CombinedOutput()
		if err == nil || !strings.Contains(string(out), tc.want) {
			t.Errorf("%v: %v, want an error saying %q:\n%s", tc.args, err, tc.want, out)
		}
	}
}

// TestClusterOverwritePolicies: the overwrite policies hold across replicas: of
// uploads of one new name racing on every replica, "reject" keeps one and answers
// the others 409 name_exists; "rename" keeps them all under distinct names.
func TestClusterOverwritePolicies(t *testing.T) {
	tc := startCluster(t, 3)
	p := tc.via()
	for _, policy := range []string{"reject", "rename"} {
		const n = 12
		codes := make([]int, n)
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i := range n {
			wg.Go(func() {
				<-start
				r, _ := p.do(t, "PUT", policy+".txt", strconv.Itoa(i), "Overwrite-Policy", policy)
				codes[i] = r.StatusCode
			})
		}
		close(start)
		wg.Wait()
		created := 0
		for _, c := range codes {
			switch {
			case c == http.StatusCreated:
				created++
			case policy == "reject" && c == http.StatusConflict:
			default:
				t.Fatalf("%s: a PUT answered %d (all: %v)", policy, c, codes)
			}
		}
		_, list := p.do(t, "PROPFIND", "", "", "Depth", "1")
		files := strings.Count(list, "<D:href>/"+policy)
		want := map[string]int{"reject": 1, "rename": n}[policy]
		if created != want || files != want {
			t.Fatalf("%s: %d created, %d files, want %d of each (codes %v)", policy, created, files, want, codes)
		}
	}
}

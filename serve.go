package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"syscall"
	"time"

	"github.com/urfave/cli/v2"

	"safedav/backend"
	"safedav/backend/claims"
	"safedav/backend/local"
	"safedav/backend/s3"
	"safedav/cluster"
	"safedav/coord"
	"safedav/locks"
	"safedav/overwrite"
	"safedav/server"
	"safedav/server/auth"
	"safedav/server/idem"
)

// serveFlags are the flags of `safedav serve`; each can also be set by a SAFEDAV_…
// environment variable.
func serveFlags() []cli.Flag {
	return append([]cli.Flag{
		&cli.StringFlag{Name: "listen", Value: "127.0.0.1:8080", EnvVars: []string{"SAFEDAV_LISTEN"}, Usage: "address to listen on"},
		&cli.StringFlag{Name: "root", Value: "./data", EnvVars: []string{"SAFEDAV_ROOT"}, Usage: "folder to serve (created if missing)"},
		&cli.StringFlag{Name: "backend", Value: "local", EnvVars: []string{"SAFEDAV_BACKEND"}, Usage: "storage: local (a folder) or s3 (a bucket)"},
		&cli.StringFlag{Name: "state-dir", EnvVars: []string{"SAFEDAV_STATE_DIR"}, Usage: "folder for locks and idempotency records (default: ROOT/.safedav on local; memory only on s3)"},
		&cli.StringFlag{Name: "s3-endpoint", EnvVars: []string{"SAFEDAV_S3_ENDPOINT"}, Usage: "S3 endpoint host:port"},
		&cli.StringFlag{Name: "s3-bucket", EnvVars: []string{"SAFEDAV_S3_BUCKET"}, Usage: "S3 bucket"},
		&cli.StringFlag{Name: "s3-prefix", EnvVars: []string{"SAFEDAV_S3_PREFIX"}, Usage: "key prefix inside the bucket"},
		&cli.StringFlag{Name: "s3-region", EnvVars: []string{"SAFEDAV_S3_REGION"}, Usage: "S3 region"},
		&cli.StringFlag{Name: "s3-access-key", EnvVars: []string{"SAFEDAV_S3_ACCESS_KEY"}, Usage: "S3 access key (default: AWS_ACCESS_KEY_ID, ~/.aws/credentials, IAM)"},
		&cli.StringFlag{Name: "s3-secret-key", EnvVars: []string{"SAFEDAV_S3_SECRET_KEY"}, Usage: "S3 secret key"},
		&cli.BoolFlag{Name: "s3-insecure", EnvVars: []string{"SAFEDAV_S3_INSECURE"}, Usage: "talk plain http to the S3 endpoint"},
		&cli.DurationFlag{Name: "s3-sweep-interval", Value: s3.DefaultSweepInterval, EnvVars: []string{"SAFEDAV_S3_SWEEP_INTERVAL"}, Usage: "how often to remove the leftovers of failed S3 uploads"},
		&cli.DurationFlag{Name: "s3-stale-after", Value: s3.DefaultStaleAfter, EnvVars: []string{"SAFEDAV_S3_STALE_AFTER"}, Usage: "how long an S3 multipart upload not in use by this process must be idle (since its last part) before it is removed; keep it longer than any upload waits between two parts"},
		&cli.Int64Flag{Name: "s3-part-size", Value: s3.DefaultPartSize, EnvVars: []string{"SAFEDAV_S3_PART_SIZE"}, Usage: "multipart part size in bytes: the largest file stored in one request, and the most memory one upload holds"},
		&cli.StringFlag{Name: "log-format", Value: "text", EnvVars: []string{"SAFEDAV_LOG_FORMAT"}, Usage: "log format: text or json"},
		&cli.StringFlag{Name: "log-level", Value: "info", EnvVars: []string{"SAFEDAV_LOG_LEVEL"}, Usage: "log level: debug, info, warn or error"},
		&cli.StringFlag{Name: "sync", Value: "always", EnvVars: []string{"SAFEDAV_SYNC"}, Usage: "always: fsync every upload before acknowledging it; none: scratch space only"},
		&cli.IntFlag{Name: "list-cache", Value: local.DefaultListCache, EnvVars: []string{"SAFEDAV_LIST_CACHE"}, Usage: "local backend, on Linux: members of large folders whose listings are kept in memory while inotify reports no change (0: off; other systems have no such cache)"},
		&cli.StringFlag{Name: "overwrite-policy", Value: "replace", EnvVars: []string{"SAFEDAV_OVERWRITE_POLICY"}, Usage: "what an upload onto an existing name does: replace, reject or rename"},
		&cli.StringSliceFlag{Name: "overwrite-rule", EnvVars: []string{"SAFEDAV_OVERWRITE_RULES"}, Usage: "per-path policy, e.g. '/backups/**=reject' (repeatable)"},
		&cli.IntFlag{Name: "lock-conflict-status", Value: http.StatusLocked, EnvVars: []string{"SAFEDAV_LOCK_CONFLICT_STATUS"}, Usage: "status for a write refused by someone else's lock: 423 or 409"},
		&cli.DurationFlag{Name: "lock-max-timeout", Value: time.Hour, EnvVars: []string{"SAFEDAV_LOCK_MAX_TIMEOUT"}, Usage: "longest lock timeout granted"},
		&cli.Int64Flag{Name: "max-xml-body", Value: 1 << 20, EnvVars: []string{"SAFEDAV_MAX_XML_BODY"}, Usage: "largest PROPFIND/PROPPATCH/LOCK body in bytes"},
		&cli.StringFlag{Name: "users", EnvVars: []string{"SAFEDAV_USERS"}, Usage: "users file (YAML, or htpasswd with bcrypt hashes); re-read on SIGHUP"},
		&cli.StringFlag{Name: "anonymous", EnvVars: []string{"SAFEDAV_ANONYMOUS"}, Usage: "without --users: read-only or read-write (required to serve anonymously on a non-loopback address)"},
		&cli.StringFlag{Name: "realm", Value: "safedav", EnvVars: []string{"SAFEDAV_REALM"}, Usage: "Basic authentication realm"},
		&cli.StringFlag{Name: "tls-cert", EnvVars: []string{"SAFEDAV_TLS_CERT"}, Usage: "PEM certificate (chain) to serve HTTPS and HTTP/2; re-read on SIGHUP"},
		&cli.StringFlag{Name: "tls-key", EnvVars: []string{"SAFEDAV_TLS_KEY"}, Usage: "PEM private key for --tls-cert"},
		&cli.BoolFlag{Name: "allow-infinite-depth", EnvVars: []string{"SAFEDAV_ALLOW_INFINITE_DEPTH"}, Usage: "allow PROPFIND Depth: infinity"},
		&cli.Int64Flag{Name: "max-upload-size", EnvVars: []string{"SAFEDAV_MAX_UPLOAD_SIZE"}, Usage: "largest upload in bytes (0: no limit)"},
		&cli.IntFlag{Name: "login-failures", Value: 10, EnvVars: []string{"SAFEDAV_LOGIN_FAILURES"}, Usage: "failed logins per client address per minute before 429"},
		&cli.DurationFlag{Name: "idempotency-retention", Value: 24 * time.Hour, EnvVars: []string{"SAFEDAV_IDEMPOTENCY_RETENTION"}, Usage: "how long a write's Idempotency-Key is remembered"},
		&cli.StringFlag{Name: "pprof-listen", EnvVars: []string{"SAFEDAV_PPROF_LISTEN"}, Usage: "loopback address for Go's /debug/pprof profiles (off by default)"},
		&cli.DurationFlag{Name: "shutdown-timeout", Value: 30 * time.Second, EnvVars: []string{"SAFEDAV_SHUTDOWN_TIMEOUT"}, Usage: "how long in-flight uploads may take to finish on shutdown"},
	}, clusterFlags()...)
}

// gcPercent is the garbage collector's default target here (Go's is 100): safedav's
// live heap is a few MiB, so at 100 it collects every few thousand small requests, about
// a tenth of the CPU of a small-file workload; at 200 the heap stays far below the
// memory budget (docs/performance.md). GOGC in the environment still wins.
const gcPercent = 200

// serve builds the server from the flags and runs it until SIGINT or SIGTERM.
func serve(c *cli.Context) error {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(gcPercent)
	}
	cfg, where, release, err := configFromFlags(c)
	if err != nil {
		return err
	}
	defer release()
	log := cfg.Logger
	srv, err := server.New(cfg)
	if err != nil {
		return err
	}
	go reloadOnHangup(c.Context, log, cfg)
	if addr := c.String("pprof-listen"); addr != "" {
		if _, err := servePprof(addr, log); err != nil {
			return err
		}
	}
	ln, err := net.Listen("tcp", c.String("listen"))
	if err != nil {
		return err
	}
	scheme := "http"
	if cfg.TLS != nil {
		scheme = "https"
	}
	log.Info("safedav serving", "url", scheme+"://"+ln.Addr().String()+"/", "storage", where, "sync", c.String("sync"),
		"users", c.String("users"), "version", version)
	fmt.Fprintf(c.App.Writer, "safedav %s serving %s at %s://%s/\n", version, where, scheme, ln.Addr())
	return srv.Serve(c.Context, ln)
}

// configFromFlags translates the flags of `safedav serve` into a server.Config, and
// opens what the Config refers to: the logger, the backend (where says what it serves,
// for the start-up line), the lock and idempotency stores in the state folder, the
// users file and the TLS pair. release saves the locks and closes the stores; call it
// once the server has stopped. On an error, whatever was opened is closed again and
// the error names the flag at fault.
func configFromFlags(c *cli.Context) (cfg server.Config, where string, release func(), err error) {
	log, err := newLogger(c.String("log-format"), c.String("log-level"))
	if err != nil {
		return server.Config{}, "", nil, err
	}
	var sync bool
	switch c.String("sync") {
	case "always":
		sync = true
	case "none":
	default:
		return server.Config{}, "", nil, fmt.Errorf("--sync must be always or none, not %q", c.String("sync"))
	}
	rules := overwrite.Rules{}
	if rules.Default, err = overwrite.ParsePolicy(c.String("overwrite-policy")); err != nil {
		return server.Config{}, "", nil, fmt.Errorf("--overwrite-policy: %w", err)
	}
	for _, s := range c.StringSlice("overwrite-rule") {
		rule, err := overwrite.ParseRule(s)
		if err != nil {
			return server.Config{}, "", nil, fmt.Errorf("--overwrite-rule %q: %w", s, err)
		}
		rules.Rules = append(rules.Rules, rule)
	}
	if st := c.Int("lock-conflict-status"); st != http.StatusLocked && st != http.StatusConflict {
		return server.Config{}, "", nil, fmt.Errorf("--lock-conflict-status must be 423 or 409, not %d", st)
	}
	cfg = server.Config{
		Logger:             log,
		Overwrite:          rules,
		LockConflictStatus: c.Int("lock-conflict-status"),
		MaxXMLBody:         c.Int64("max-xml-body"),
		ShutdownTimeout:    c.Duration("shutdown-timeout"),
		Version:            version,
		Realm:              c.String("realm"),
		AllowInfiniteDepth: c.Bool("allow-infinite-depth"),
		MaxUploadSize:      c.Int64("max-upload-size"),
		Limiter:            auth.NewLimiter(c.Int("login-failures"), time.Minute, nil),
	}
	// The checks that need no file come first, so that a bad flag opens nothing.
	if err := accessConfig(c, &cfg); err != nil {
		return server.Config{}, "", nil, err
	}
	copt, clustered, err := clusterOptions(c)
	if err != nil {
		return server.Config{}, "", nil, err
	}

	// From here on, every step adds its undoing to closers, run in reverse on an error
	// and by release.
	var closers []func()
	closeAll := func() {
		for i := len(closers) - 1; i >= 0; i-- {
			closers[i]()
		}
	}
	defer func() {
		if err != nil {
			closeAll()
		}
	}()
	var cl *cluster.Cluster
	if clustered {
		ctx, cancel := context.WithTimeout(c.Context, 30*time.Second)
		cl, err = cluster.Open(ctx, copt)
		cancel()
		if err != nil {
			return server.Config{}, "", nil, fmt.Errorf("--etcd-endpoints: %w", err)
		}
		// Closed last: revoking the session releases what this replica still holds
		// once nothing runs any more.
		closers = append(closers, func() {
			if err := cl.Close(); err != nil {
				log.Error("closing the etcd session", "error", err)
			}
		})
	}
	store, where, stateDir, unlockRoot, err := openBackend(c, log, sync, cl)
	if err != nil {
		return server.Config{}, "", nil, err
	}
	if unlockRoot != nil {
		closers = append(closers, unlockRoot)
	}
	if closer, ok := store.(interface{ Close() error }); ok {
		closers = append(closers, func() {
			if err := closer.Close(); err != nil {
				log.Error("closing the store", "error", err)
			}
		})
	}
	if cl != nil {
		if err := replicaState(c, cl, &cfg, &closers); err != nil {
			return server.Config{}, "", nil, err
		}
		if stateDir != "" {
			log.Warn("--state-dir is not used by a replica: locks and idempotency records live in etcd")
		}
		cfg.Backend = store
		log.Info("replica of a cluster", "etcd", copt.Endpoints, "prefix", copt.Prefix, "replica", cl.ID())
		return cfg, where, closeAll, nil
	}
	var lockStore locks.Store
	idemPath := ""
	if stateDir != "" {
		if err := os.MkdirAll(stateDir, 0o700); err != nil {
			return server.Config{}, "", nil, fmt.Errorf("cannot create %s: %w", stateDir, err)
		}
		if c.String("state-dir") != "" && !(unlockRoot != nil && sameDir(stateDir, filepath.Join(c.String("root"), ".safedav"))) {
			// A state folder given apart from the root is one process's too: two
			// servers appending to one idempotency log or lock file lose records.
			unlockState, err := lockStateDir(stateDir)
			if err != nil {
				return server.Config{}, "", nil, err
			}
			closers = append(closers, unlockState)
		}
		fs := locks.NewFileStore(filepath.Join(stateDir, "locks.json"))
		fs.NoSync = true // locks are short-lived; see FileStore.NoSync
		lockStore = fs
		idemPath = filepath.Join(stateDir, "idempotency.log")
	} else {
		log.Warn("no --state-dir: locks and idempotency records live in memory and are lost on restart")
	}
	lm, err := locks.NewManager(locks.Options{
		MaxTimeout:  c.Duration("lock-max-timeout"),
		Store:       lockStore,
		OnSaveError: func(err error) { log.Error("saving locks", "error", err) },
	})
	if err != nil {
		return server.Config{}, "", nil, fmt.Errorf("loading locks: %w", err)
	}
	closers = append(closers, func() {
		if err := lm.Flush(context.Background()); err != nil {
			log.Error("saving locks at exit", "error", err)
		}
	})
	ids, err := idem.Open(idem.Options{Path: idemPath, Retention: c.Duration("idempotency-retention")})
	if err != nil {
		return server.Config{}, "", nil, fmt.Errorf("loading idempotency records: %w", err)
	}
	closers = append(closers, func() { ids.Close() })
	cfg.Backend, cfg.Locks, cfg.Idempotency = store, coord.LocalLocks(lm), coord.LocalIdempotency(ids)
	return cfg, where, closeAll, nil
}

// openBackend opens the store the flags name and says where state is kept. A local
// root is locked for this process (ROOT/.safedav/lock) before the store sweeps what a
// crash left in it; unlock releases it (nil on S3).
//
// cl, when set, makes the store a replica's: its namespace claims are taken in etcd,
// and an S3 server without conditional writes is refused, since they fence a replica
// that stalled past its session (docs/design.md).
func openBackend(c *cli.Context, log *slog.Logger, sync bool, cl *cluster.Cluster) (b backend.Backend, where, stateDir string, unlock func(), err error) {
	stateDir = c.String("state-dir")
	switch c.String("backend") {
	case "local":
		root := c.String("root")
		lc := c.Int("list-cache")
		if lc <= 0 {
			lc = -1 // off
		}
		own := filepath.Join(root, ".safedav")
		if err := os.MkdirAll(root, 0o755); err != nil {
			return nil, "", "", nil, fmt.Errorf("cannot serve %s: %w", root, err)
		}
		if err := os.Mkdir(own, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
			return nil, "", "", nil, fmt.Errorf("cannot serve %s: %w", root, err)
		}
		unlock, err := lockStateDir(own)
		if err != nil {
			return nil, "", "", nil, err
		}
		st, err := local.New(root, local.Options{Sync: sync, ListCache: lc})
		if err != nil {
			unlock()
			return nil, "", "", nil, fmt.Errorf("cannot serve %s: %w", root, err)
		}
		if stateDir == "" {
			stateDir = own
		}
		abs, _ := filepath.Abs(root)
		return st, abs, stateDir, unlock, nil
	case "s3":
		if c.String("s3-endpoint") == "" || c.String("s3-bucket") == "" {
			return nil, "", "", nil, fmt.Errorf("--backend s3 needs --s3-endpoint and --s3-bucket")
		}
		if c.Duration("s3-sweep-interval") < 0 || c.Duration("s3-stale-after") < 0 {
			return nil, "", "", nil, fmt.Errorf("--s3-sweep-interval and --s3-stale-after must not be negative")
		}
		var claimer claims.Claimer
		if cl != nil {
			claimer = cl.Claims(claims.DefaultWait)
		}
		ctx, cancel := context.WithTimeout(c.Context, 30*time.Second)
		defer cancel()
		st, err := s3.New(ctx, s3.Options{
			Claims:   claimer,
			Endpoint: c.String("s3-endpoint"), Bucket: c.String("s3-bucket"), Prefix: c.String("s3-prefix"),
			Region: c.String("s3-region"), AccessKey: c.String("s3-access-key"), SecretKey: c.String("s3-secret-key"),
			Insecure: c.Bool("s3-insecure"), PartSize: c.Int64("s3-part-size"),
			SweepInterval: c.Duration("s3-sweep-interval"), StaleAfter: c.Duration("s3-stale-after"),
			CloseTimeout: c.Duration("shutdown-timeout"),
		})
		if err != nil {
			return nil, "", "", nil, err
		}
		if cl != nil && (!st.ConditionalWrites() || !st.ConditionalDeletes()) {
			st.Close()
			return nil, "", "", nil, errors.New("--etcd-endpoints: the S3 server ignores conditional writes (If-Match/If-None-Match on PUT and If-Match on DELETE), which replicas need; run one safedav on this bucket, or use an S3 server that supports them")
		}
		if !st.ConditionalWrites() {
			log.Warn("the S3 server ignores conditional writes: safedav falls back to in-process locking, so run only ONE safedav instance on this bucket")
		}
		if !st.ConditionalDeletes() {
			log.Warn("the S3 server ignores If-Match on DELETE: a file MOVE relies on in-process claims, so a write by another safedav instance racing a MOVE of the same file may be lost; run only ONE safedav instance on this bucket")
		}
		return st, "s3://" + c.String("s3-bucket") + "/" + c.String("s3-prefix"), stateDir, nil, nil
	}
	return nil, "", "", nil, fmt.Errorf("--backend must be local or s3, not %q", c.String("backend"))
}

// sameDir reports whether a and b name the same folder (by path, once absolute).
func sameDir(a, b string) bool {
	a, errA := filepath.Abs(a)
	b, errB := filepath.Abs(b)
	return errA == nil && errB == nil && a == b
}

// accessConfig sets TLS and who may connect. Without a users file the server is
// anonymous, which is only allowed by default on a loopback address: anywhere else the
// operator must say --anonymous read-only or read-write.
func accessConfig(c *cli.Context, cfg *server.Config) error {
	if cert, key := c.String("tls-cert"), c.String("tls-key"); cert != "" || key != "" {
		if cert == "" || key == "" {
			return fmt.Errorf("--tls-cert and --tls-key go together")
		}
		r, err := server.LoadCert(cert, key)
		if err != nil {
			return err
		}
		cfg.TLS = r
	}
	anon := c.String("anonymous")
	switch anon {
	case "", "read-write":
		cfg.Anonymous = server.AnonymousReadWrite
	case "read-only":
		cfg.Anonymous = server.AnonymousReadOnly
	default:
		return fmt.Errorf("--anonymous must be read-only or read-write, not %q", anon)
	}
	if path := c.String("users"); path != "" {
		if anon != "" {
			return fmt.Errorf("--users and --anonymous exclude each other")
		}
		users, err := auth.LoadUsers(path)
		if err != nil {
			return err
		}
		cfg.Users = users
		return nil
	}
	if anon == "" && !loopback(c.String("listen")) {
		return fmt.Errorf("refusing to serve %s to anyone without a password: give --users FILE, or --anonymous read-only|read-write to allow it", c.String("listen"))
	}
	return nil
}

// loopback reports whether a listen address only accepts local connections.
func loopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// reloadOnHangup re-reads the TLS pair and the users file on SIGHUP; on an error the
// old ones stay in use and the error is logged.
func reloadOnHangup(ctx context.Context, log *slog.Logger, cfg server.Config) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	for {
		select {
		case <-ctx.Done():
			return
		case <-hup:
		}
		if cfg.TLS != nil {
			if err := cfg.TLS.Reload(); err != nil {
				log.Error("TLS reload failed; keeping the old certificate", "error", err)
			} else {
				log.Info("TLS certificate reloaded")
			}
		}
		if cfg.Users != nil {
			if err := cfg.Users.Reload(); err != nil {
				log.Error("users reload failed; keeping the old users", "error", err)
			} else {
				log.Info("users reloaded")
			}
		}
	}
}

func newLogger(format, level string) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level: %w", err)
	}
	opts := &slog.HandlerOptions{Level: lv}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(os.Stderr, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(os.Stderr, opts)), nil
	}
	return nil, fmt.Errorf("--log-format must be text or json, not %q", format)
}

// replicaState gives cfg the state a replica shares with the others through etcd.
func replicaState(c *cli.Context, cl *cluster.Cluster, cfg *server.Config, closers *[]func()) error {
	ctx, cancel := context.WithTimeout(c.Context, 30*time.Second)
	defer cancel()
	lt, err := cl.Locks(ctx, locks.Options{
		MaxTimeout:  c.Duration("lock-max-timeout"),
		OnSaveError: func(err error) { cfg.Logger.Error("removing the locks of a deleted resource", "error", err) },
	})
	if err != nil {
		return fmt.Errorf("etcd locks: %w", err)
	}
	*closers = append(*closers, func() { lt.Close() })
	cfg.Locks = lt
	cfg.Idempotency = cl.Idempotency(c.Duration("idempotency-retention"))
	cfg.Uploads = cl.Uploads(claims.DefaultWait)
	cfg.Scoped = true
	return nil
}

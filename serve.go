package main

import (
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/urfave/cli/v2"

	"safedav/backend/local"
	"safedav/locks"
	"safedav/overwrite"
	"safedav/server"
	"safedav/server/idem"
)

// serveFlags are the flags of `safedav serve`; each can also be set by a SAFEDAV_…
// environment variable.
func serveFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "listen", Value: "127.0.0.1:8080", EnvVars: []string{"SAFEDAV_LISTEN"}, Usage: "address to listen on"},
		&cli.StringFlag{Name: "root", Value: "./data", EnvVars: []string{"SAFEDAV_ROOT"}, Usage: "folder to serve (created if missing)"},
		&cli.StringFlag{Name: "log-format", Value: "text", EnvVars: []string{"SAFEDAV_LOG_FORMAT"}, Usage: "log format: text or json"},
		&cli.StringFlag{Name: "log-level", Value: "info", EnvVars: []string{"SAFEDAV_LOG_LEVEL"}, Usage: "log level: debug, info, warn or error"},
		&cli.StringFlag{Name: "sync", Value: "always", EnvVars: []string{"SAFEDAV_SYNC"}, Usage: "always: fsync every upload before acknowledging it; none: scratch space only"},
		&cli.StringFlag{Name: "overwrite-policy", Value: "replace", EnvVars: []string{"SAFEDAV_OVERWRITE_POLICY"}, Usage: "what an upload onto an existing name does: replace, reject or rename"},
		&cli.StringSliceFlag{Name: "overwrite-rule", EnvVars: []string{"SAFEDAV_OVERWRITE_RULES"}, Usage: "per-path policy, e.g. '/backups/**=reject' (repeatable)"},
		&cli.IntFlag{Name: "lock-conflict-status", Value: http.StatusLocked, EnvVars: []string{"SAFEDAV_LOCK_CONFLICT_STATUS"}, Usage: "status for a write refused by someone else's lock: 423 or 409"},
		&cli.DurationFlag{Name: "lock-max-timeout", Value: time.Hour, EnvVars: []string{"SAFEDAV_LOCK_MAX_TIMEOUT"}, Usage: "longest lock timeout granted"},
		&cli.Int64Flag{Name: "max-xml-body", Value: 1 << 20, EnvVars: []string{"SAFEDAV_MAX_XML_BODY"}, Usage: "largest PROPFIND/PROPPATCH/LOCK body in bytes"},
		&cli.DurationFlag{Name: "idempotency-retention", Value: 24 * time.Hour, EnvVars: []string{"SAFEDAV_IDEMPOTENCY_RETENTION"}, Usage: "how long a write's Idempotency-Key is remembered"},
		&cli.DurationFlag{Name: "shutdown-timeout", Value: 30 * time.Second, EnvVars: []string{"SAFEDAV_SHUTDOWN_TIMEOUT"}, Usage: "how long in-flight uploads may take to finish on shutdown"},
	}
}

// serve builds the server from the flags and runs it until SIGINT or SIGTERM.
func serve(c *cli.Context) error {
	log, err := newLogger(c.String("log-format"), c.String("log-level"))
	if err != nil {
		return err
	}
	var sync bool
	switch c.String("sync") {
	case "always":
		sync = true
	case "none":
	default:
		return fmt.Errorf("--sync must be always or none, not %q", c.String("sync"))
	}
	rules := overwrite.Rules{}
	if rules.Default, err = overwrite.ParsePolicy(c.String("overwrite-policy")); err != nil {
		return fmt.Errorf("--overwrite-policy: %w", err)
	}
	for _, s := range c.StringSlice("overwrite-rule") {
		rule, err := overwrite.ParseRule(s)
		if err != nil {
			return fmt.Errorf("--overwrite-rule %q: %w", s, err)
		}
		rules.Rules = append(rules.Rules, rule)
	}

	root := c.String("root")
	store, err := local.New(root, local.Options{Sync: sync})
	if err != nil {
		return fmt.Errorf("cannot serve %s: %w", root, err)
	}
	defer store.Close()
	meta := filepath.Join(root, ".safedav")
	if err := os.MkdirAll(meta, 0o700); err != nil {
		return fmt.Errorf("cannot create %s: %w", meta, err)
	}
	lm, err := locks.NewManager(locks.Options{
		MaxTimeout: c.Duration("lock-max-timeout"),
		Store:      locks.NewFileStore(filepath.Join(meta, "locks.json")),
	})
	if err != nil {
		return fmt.Errorf("loading locks: %w", err)
	}
	ids, err := idem.Open(idem.Options{Path: filepath.Join(meta, "idempotency.log"), Retention: c.Duration("idempotency-retention")})
	if err != nil {
		return fmt.Errorf("loading idempotency records: %w", err)
	}
	defer ids.Close()
	srv, err := server.New(server.Config{
		Idempotency:        ids,
		Backend:            store,
		Locks:              lm,
		Logger:             log,
		Overwrite:          rules,
		LockConflictStatus: c.Int("lock-conflict-status"),
		MaxXMLBody:         c.Int64("max-xml-body"),
		ShutdownTimeout:    c.Duration("shutdown-timeout"),
		Version:            version,
	})
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", c.String("listen"))
	if err != nil {
		return err
	}
	abs, _ := filepath.Abs(root)
	log.Info("safedav serving", "url", "http://"+ln.Addr().String()+"/", "root", abs, "sync", c.String("sync"), "version", version)
	fmt.Fprintf(c.App.Writer, "safedav %s serving %s at http://%s/\n", version, abs, ln.Addr())
	return srv.Serve(c.Context, ln)
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

package main

import (
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/urfave/cli/v2"
	"golang.org/x/crypto/bcrypt"

	"safedav/overwrite"
	"safedav/server"
)

// flagsConfig runs configFromFlags on the flags of `safedav serve` given in args, as
// the command line would, and releases what it opened when the test ends.
func flagsConfig(t *testing.T, args ...string) (server.Config, string, error) {
	t.Helper()
	var (
		cfg   server.Config
		where string
		err   error
	)
	app := &cli.App{
		Name: "safedav", Writer: io.Discard, ErrWriter: io.Discard,
		Commands: []*cli.Command{{
			Name:  "serve",
			Flags: serveFlags(),
			Action: func(c *cli.Context) error {
				var release func()
				cfg, where, release, err = configFromFlags(c)
				if err == nil {
					t.Cleanup(release)
				} else if release != nil {
					t.Error("configFromFlags returned a release func with an error")
				}
				return nil
			},
		}},
	}
	if rerr := app.Run(append([]string{"safedav", "serve"}, args...)); rerr != nil {
		t.Fatalf("parsing %q: %v", args, rerr)
	}
	return cfg, where, err
}

// Valid flag sets give the Config fields they name, and the defaults otherwise.
func TestConfigFromFlags(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile := writeCert(t, dir, 1)
	h, _ := bcrypt.GenerateFromPassword([]byte("pw"), 4)
	users := filepath.Join(dir, "htpasswd")
	if err := os.WriteFile(users, []byte("carol:"+string(h)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		args  []string
		check func(t *testing.T, cfg server.Config, root string)
	}{
		{"defaults", nil, func(t *testing.T, cfg server.Config, root string) {
			if cfg.Backend == nil || cfg.Locks == nil || cfg.Idempotency == nil || cfg.Logger == nil || cfg.Limiter == nil {
				t.Errorf("missing parts: %+v", cfg)
			}
			if cfg.LockConflictStatus != http.StatusLocked || cfg.MaxXMLBody != 1<<20 || cfg.MaxUploadSize != 0 ||
				cfg.ShutdownTimeout != 30*time.Second || cfg.Realm != "safedav" || cfg.AllowInfiniteDepth {
				t.Errorf("defaults: %+v", cfg)
			}
			if cfg.Overwrite.Default != overwrite.Replace || len(cfg.Overwrite.Rules) != 0 {
				t.Errorf("overwrite: %+v", cfg.Overwrite)
			}
			if cfg.Anonymous != server.AnonymousReadWrite || cfg.Users != nil || cfg.TLS != nil {
				t.Errorf("access: anonymous %v, users %v, TLS %v", cfg.Anonymous, cfg.Users, cfg.TLS)
			}
			if cfg.Version != version {
				t.Errorf("version %q", cfg.Version)
			}
			if !dirExists(filepath.Join(root, ".safedav")) {
				t.Error("the default state folder ROOT/.safedav was not made")
			}
		}},
		{"limits_and_policies", []string{
			"--lock-conflict-status", "409", "--overwrite-policy", "reject", "--overwrite-rule", "/backups/**=rename",
			"--overwrite-rule", "/tmp/**=replace", "--max-xml-body", "4096", "--max-upload-size", "1000",
			"--realm", "files", "--allow-infinite-depth", "--shutdown-timeout", "5s", "--sync", "none",
		}, func(t *testing.T, cfg server.Config, _ string) {
			if cfg.LockConflictStatus != http.StatusConflict || cfg.MaxXMLBody != 4096 || cfg.MaxUploadSize != 1000 ||
				cfg.Realm != "files" || !cfg.AllowInfiniteDepth || cfg.ShutdownTimeout != 5*time.Second {
				t.Errorf("%+v", cfg)
			}
			if cfg.Overwrite.Default != overwrite.Reject || len(cfg.Overwrite.Rules) != 2 {
				t.Errorf("overwrite: %+v", cfg.Overwrite)
			}
		}},
		{"state_dir", []string{"--state-dir", filepath.Join(dir, "state")}, func(t *testing.T, _ server.Config, _ string) {
			if !dirExists(filepath.Join(dir, "state")) {
				t.Error("--state-dir was not made")
			}
		}},
		{"anonymous_read_only_on_network", []string{"--listen", "0.0.0.0:8080", "--anonymous", "read-only"}, func(t *testing.T, cfg server.Config, _ string) {
			if cfg.Anonymous != server.AnonymousReadOnly || cfg.Users != nil {
				t.Errorf("anonymous %v, users %v", cfg.Anonymous, cfg.Users)
			}
		}},
		{"users_and_tls", []string{"--listen", "0.0.0.0:8443", "--users", users, "--tls-cert", certFile, "--tls-key", keyFile}, func(t *testing.T, cfg server.Config, _ string) {
			if cfg.Users == nil || cfg.TLS == nil {
				t.Errorf("users %v, TLS %v", cfg.Users, cfg.TLS)
			}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			cfg, where, err := flagsConfig(t, append([]string{"--root", root}, tc.args...)...)
			if err != nil {
				t.Fatal(err)
			}
			if where != root {
				t.Errorf("where = %q, want %q", where, root)
			}
			tc.check(t, cfg, root)
			if _, err := server.New(cfg); err != nil {
				t.Errorf("server.New refuses the Config: %v", err)
			}
		})
	}
}

// Invalid flags give an error that names the flag, before anything is served.
func TestConfigFromFlagsInvalid(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile := writeCert(t, dir, 1)
	aFile := filepath.Join(dir, "file")
	if err := os.WriteFile(aFile, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		args []string
		want string // in the error
	}{
		{"bad_overwrite_policy", []string{"--overwrite-policy", "yolo"}, "--overwrite-policy"},
		{"bad_overwrite_rule", []string{"--overwrite-rule", "nopattern"}, "--overwrite-rule"},
		{"bad_lock_conflict_status", []string{"--lock-conflict-status", "500"}, "--lock-conflict-status must be 423 or 409"},
		{"bad_log_level", []string{"--log-level", "loud"}, "--log-level"},
		{"bad_log_format", []string{"--log-format", "xml"}, "--log-format"},
		{"bad_sync", []string{"--sync", "sometimes"}, "--sync"},
		{"tls_cert_without_key", []string{"--tls-cert", certFile}, "--tls-cert and --tls-key go together"},
		{"tls_key_without_cert", []string{"--tls-key", keyFile}, "--tls-cert and --tls-key go together"},
		{"tls_pair_missing", []string{"--tls-cert", filepath.Join(dir, "none.pem"), "--tls-key", keyFile}, "none.pem"},
		{"bad_anonymous", []string{"--anonymous", "maybe"}, "--anonymous"},
		{"users_and_anonymous", []string{"--users", aFile, "--anonymous", "read-only"}, "--users and --anonymous"},
		{"anonymous_on_network", []string{"--listen", "0.0.0.0:8080"}, "refusing to serve"},
		{"bad_backend", []string{"--backend", "ftp"}, "--backend"},
		{"s3_without_endpoint", []string{"--backend", "s3"}, "--s3-endpoint"},
		{"s3_negative_sweep", []string{"--backend", "s3", "--s3-endpoint", "127.0.0.1:1", "--s3-bucket", "b", "--s3-sweep-interval", "-1m"}, "--s3-sweep-interval"},
		{"s3_negative_stale", []string{"--backend", "s3", "--s3-endpoint", "127.0.0.1:1", "--s3-bucket", "b", "--s3-stale-after", "-1h"}, "--s3-stale-after"},
		{"root_is_a_file", []string{"--root", aFile}, "cannot serve"},
		{"state_dir_is_a_file", []string{"--state-dir", filepath.Join(aFile, "state")}, "cannot create"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := flagsConfig(t, append([]string{"--root", t.TempDir()}, tc.args...)...)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one containing %q", err, tc.want)
			}
		})
	}
}

func dirExists(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.IsDir()
}

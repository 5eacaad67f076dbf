package main

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"safedav/cluster"
)

// clusterFlags make a process one replica of a cluster over one S3 bucket, its
// shared state in etcd. The TLS and auth flags are named after etcdctl's.
func clusterFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "etcd-endpoints", EnvVars: []string{"SAFEDAV_ETCD_ENDPOINTS"}, Usage: "etcd members host:port[,host:port…]: run as one replica of a cluster over one S3 bucket, sharing locks, uploads and idempotency records through etcd"},
		&cli.StringFlag{Name: "etcd-prefix", Value: "/safedav/", EnvVars: []string{"SAFEDAV_ETCD_PREFIX"}, Usage: "prefix of safedav's keys in etcd: replicas of one cluster share it"},
		&cli.StringFlag{Name: "etcd-cacert", EnvVars: []string{"SAFEDAV_ETCD_CACERT"}, Usage: "PEM CA bundle that signed the etcd servers' certificates (enables TLS)"},
		&cli.StringFlag{Name: "etcd-cert", EnvVars: []string{"SAFEDAV_ETCD_CERT"}, Usage: "PEM client certificate for etcd (enables TLS)"},
		&cli.StringFlag{Name: "etcd-key", EnvVars: []string{"SAFEDAV_ETCD_KEY"}, Usage: "PEM private key of --etcd-cert"},
		&cli.StringFlag{Name: "etcd-user", EnvVars: []string{"SAFEDAV_ETCD_USER"}, Usage: "etcd user name, when etcd's auth is enabled"},
		&cli.StringFlag{Name: "etcd-password", EnvVars: []string{"SAFEDAV_ETCD_PASSWORD"}, Usage: "password of --etcd-user (prefer the environment variable)"},
		&cli.DurationFlag{Name: "etcd-session-ttl", Value: cluster.DefaultSessionTTL, EnvVars: []string{"SAFEDAV_ETCD_SESSION_TTL"}, Usage: "how long after a replica dies what it held (claims, uploads in progress) is released"},
	}
}

// clusterOptions reads the cluster flags; ok is false when --etcd-endpoints is not
// set (one process, state in memory or the state folder). A replica needs the S3
// backend: a local root is one process's.
func clusterOptions(c *cli.Context) (opt cluster.Options, ok bool, err error) {
	eps := c.String("etcd-endpoints")
	if eps == "" {
		return cluster.Options{}, false, nil
	}
	if c.String("backend") != "s3" {
		return cluster.Options{}, false, errors.New("--etcd-endpoints: replicas share an S3 bucket (--backend s3); a local root is served by one process")
	}
	for _, e := range strings.Split(eps, ",") {
		if e = strings.TrimSpace(e); e != "" {
			opt.Endpoints = append(opt.Endpoints, e)
		}
	}
	if len(opt.Endpoints) == 0 {
		return cluster.Options{}, false, fmt.Errorf("--etcd-endpoints %q names no endpoint", eps)
	}
	opt.Prefix = c.String("etcd-prefix")
	if !strings.HasPrefix(opt.Prefix, "/") {
		return cluster.Options{}, false, fmt.Errorf("--etcd-prefix %q must start with /", opt.Prefix)
	}
	opt.Username, opt.Password = c.String("etcd-user"), c.String("etcd-password")
	if (opt.Username == "") != (opt.Password == "") {
		return cluster.Options{}, false, errors.New("--etcd-user and --etcd-password go together")
	}
	if opt.SessionTTL = c.Duration("etcd-session-ttl"); opt.SessionTTL < 2*time.Second {
		return cluster.Options{}, false, errors.New("--etcd-session-ttl must be at least 2s")
	}
	ca, cert, key := c.String("etcd-cacert"), c.String("etcd-cert"), c.String("etcd-key")
	if (cert == "") != (key == "") {
		return cluster.Options{}, false, errors.New("--etcd-cert and --etcd-key go together")
	}
	if ca != "" || cert != "" {
		t := &tls.Config{MinVersion: tls.VersionTLS12}
		if ca != "" {
			pem, err := os.ReadFile(ca)
			if err != nil {
				return cluster.Options{}, false, fmt.Errorf("--etcd-cacert: %w", err)
			}
			t.RootCAs = x509.NewCertPool()
			if !t.RootCAs.AppendCertsFromPEM(pem) {
				return cluster.Options{}, false, fmt.Errorf("--etcd-cacert %s: no PEM certificate in it", ca)
			}
		}
		if cert != "" {
			pair, err := tls.LoadX509KeyPair(cert, key)
			if err != nil {
				return cluster.Options{}, false, fmt.Errorf("--etcd-cert/--etcd-key: %w", err)
			}
			t.Certificates = []tls.Certificate{pair}
		}
		opt.TLS = t
	}
	return opt, true, nil
}

package server

import (
	"crypto/tls"
	"fmt"
	"sync/atomic"
)

// CertReloader serves a certificate and key pair that can be replaced while the server
// runs (SIGHUP after a renewal): new handshakes get the new pair, open connections
// keep theirs.
type CertReloader struct {
	certFile, keyFile string
	cert              atomic.Pointer[tls.Certificate]
}

// LoadCert reads a PEM certificate (chain) and key; it fails if they do not parse or
// do not match.
func LoadCert(certFile, keyFile string) (*CertReloader, error) {
	c := &CertReloader{certFile: certFile, keyFile: keyFile}
	if err := c.Reload(); err != nil {
		return nil, err
	}
	return c, nil
}

// Reload reads the files again; on error the previous pair stays in use.
func (c *CertReloader) Reload() error {
	pair, err := tls.LoadX509KeyPair(c.certFile, c.keyFile)
	if err != nil {
		return fmt.Errorf("loading TLS certificate %s and key %s: %w", c.certFile, c.keyFile, err)
	}
	c.cert.Store(&pair)
	return nil
}

// TLSConfig is a server configuration using the current pair. HTTP/2 is negotiated
// by net/http when it serves TLS.
func (c *CertReloader) TLSConfig() *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			return c.cert.Load(), nil
		},
	}
}

package clickhouse

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/flexiflow/flexiflow/sinks/clickhouse/chdbtest"
)

// TestPasswordFromOutsideTheDSN logs in to the ClickHouse engine with a
// DSN that carries no password: refused on its own, accepted with the
// password given as an option (as --clickhouse-password-file and
// FLEXIFLOW_CLICKHOUSE_PASSWORD do), and the password appears in no error.
func TestPasswordFromOutsideTheDSN(t *testing.T) {
	const password = "s3cret-for-this-test"
	addr := chdbtest.StartHTTP(t, "flexiflow", password)
	dsn := fmt.Sprintf("http://flexiflow@%s/default?dial_timeout=5s", addr)
	ctx := context.Background()

	_, err := OpenNative(ctx, dsn)
	if !errors.Is(err, ErrAuth) {
		t.Fatalf("no password: want a refused login, got %v", err)
	}
	if !strings.Contains(err.Error(), "--clickhouse-password-file") {
		t.Errorf("the refusal does not say where a password goes: %v", err)
	}
	_, err = OpenNative(ctx, dsn, WithPassword("wrong"))
	if !errors.Is(err, ErrAuth) || strings.Contains(err.Error(), "wrong") {
		t.Fatalf("wrong password: want a refused login that does not echo it, got %v", err)
	}
	n, err := OpenNative(ctx, dsn, WithPassword(password))
	if err != nil {
		t.Fatalf("password as an option: %v", err)
	}
	defer n.Close()
	if strings.Contains(n.Where, password) {
		t.Errorf("connection description shows the password: %s", n.Where)
	}
}

// TestCAFile checks the private-CA option: a missing or non-PEM file is a
// clear error before dialling, and a good one makes the client speak TLS
// (which a plain-text server then refuses, proving TLS was attempted).
func TestCAFile(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	dsn := "clickhouse://flexiflow:pw@127.0.0.1:1/default?dial_timeout=1s"

	if _, err := OpenNative(ctx, dsn, WithCAFile(filepath.Join(dir, "missing.pem"))); err == nil || !strings.Contains(err.Error(), "ClickHouse CA file") {
		t.Errorf("missing CA file: %v", err)
	}
	junk := filepath.Join(dir, "junk.pem")
	if err := os.WriteFile(junk, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenNative(ctx, dsn, WithCAFile(junk)); err == nil || !strings.Contains(err.Error(), "holds no PEM certificate") {
		t.Errorf("non-PEM CA file: %v", err)
	}

	ca := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(ca, selfSignedCA(t), 0o600); err != nil {
		t.Fatal(err)
	}
	// A listener that reports the first byte a client sends: 0x16 opens a
	// TLS handshake, anything else is the native protocol in plain text.
	first := func(opts ...Option) byte {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		got := make(chan byte, 1)
		go func() {
			c, err := ln.Accept()
			if err != nil {
				got <- 0
				return
			}
			defer c.Close()
			b := make([]byte, 1)
			_ = c.SetReadDeadline(time.Now().Add(3 * time.Second))
			if _, err := c.Read(b); err != nil {
				got <- 0
				return
			}
			got <- b[0]
		}()
		dsn := fmt.Sprintf("clickhouse://flexiflow:pw@%s/default?dial_timeout=2s", ln.Addr())
		cctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		defer cancel()
		_, _ = OpenNative(cctx, dsn, opts...)
		return <-got
	}
	if b := first(); b == 0x16 {
		t.Error("without a CA file the client opened TLS")
	}
	if b := first(WithCAFile(ca)); b != 0x16 {
		t.Errorf("with a CA file the client's first byte is %#x, want a TLS handshake (0x16)", b)
	}
}

// selfSignedCA returns a fresh CA certificate as PEM.
func selfSignedCA(t *testing.T) []byte {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "flexiflow test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

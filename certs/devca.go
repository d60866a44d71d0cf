package certs

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// File names of the development CA in its folder.
const (
	DevCACertFile = "ca.pem"
	DevCAKeyFile  = "ca-key.pem" // mode 0600
	devLeafLife   = 30 * 24 * time.Hour
)

// DevCA is a local certificate authority for `campus dev --tls`: created
// once in the data folder, it signs a certificate for each school host on
// its first handshake (kept in memory, renewed when a third of its life is
// left). Unknown server names get nothing.
type DevCA struct {
	cert    *x509.Certificate
	key     *ecdsa.PrivateKey
	certPEM []byte
	routes  Routes
	metrics *sourceMetrics

	mu     sync.Mutex
	leaves map[string]*tls.Certificate // by host
}

// LoadOrCreateDevCA loads the CA from dir, creating it (and dir) on the
// first call. The key file is written with mode 0600 and refused if it is
// readable by others.
func LoadOrCreateDevCA(dir string, routes Routes, reg prometheus.Registerer) (*DevCA, error) {
	certPath, keyPath := filepath.Join(dir, DevCACertFile), filepath.Join(dir, DevCAKeyFile)
	certPEM, err := os.ReadFile(certPath)
	if errors.Is(err, fs.ErrNotExist) {
		if err := createDevCA(dir, certPath, keyPath); err != nil {
			return nil, fmt.Errorf("create development CA in %s: %w", dir, err)
		}
		certPEM, err = os.ReadFile(certPath)
	}
	if err != nil {
		return nil, fmt.Errorf("read development CA: %w", err)
	}
	st, err := os.Stat(keyPath)
	if err != nil {
		return nil, fmt.Errorf("development CA key: %w", err)
	}
	if st.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("development CA key %s is readable by others (mode %v): chmod 600 it", keyPath, st.Mode().Perm())
	}
	keyPEM, err := os.ReadFile(keyPath)
	if err != nil {
		return nil, fmt.Errorf("read development CA key: %w", err)
	}
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("development CA in %s: %w", dir, err)
	}
	key, ok := pair.PrivateKey.(*ecdsa.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("development CA key in %s is not ECDSA", dir)
	}
	cert, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil {
		return nil, fmt.Errorf("development CA certificate: %w", err)
	}
	ca := &DevCA{cert: cert, key: key, certPEM: certPEM, routes: routes, leaves: map[string]*tls.Certificate{}}
	if ca.metrics, err = newSourceMetrics(reg, routes, ca.expiry); err != nil {
		return nil, err
	}
	return ca, nil
}

func createDevCA(dir, certPath, keyPath string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	host, _ := os.Hostname()
	tmpl := &x509.Certificate{
		SerialNumber:          randomSerial(),
		Subject:               pkix.Name{Organization: []string{"Campus development CA"}, CommonName: "Campus dev CA " + host},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().AddDate(10, 0, 0),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return err
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return err
	}
	// Key first, exclusively: two processes creating at once cannot both
	// win, and a crash leaves no certificate without its key.
	kf, err := os.OpenFile(keyPath, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if err := pem.Encode(kf, &pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}); err != nil {
		kf.Close()
		return err
	}
	if err := kf.Close(); err != nil {
		return err
	}
	return os.WriteFile(certPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644)
}

func randomSerial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		panic(err) // crypto/rand does not fail on Linux
	}
	return n
}

// CertPEM is the CA certificate, for clients to trust.
func (ca *DevCA) CertPEM() []byte { return ca.certPEM }

// Certificate is the CA certificate.
func (ca *DevCA) Certificate() *x509.Certificate { return ca.cert }

// SPKIHash is the base64 SHA-256 of the CA's public key, the form
// Chromium's --ignore-certificate-errors-spki-list takes.
func SPKIHash(c *x509.Certificate) string {
	sum := sha256.Sum256(c.RawSubjectPublicKeyInfo)
	return base64.StdEncoding.EncodeToString(sum[:])
}

// GetCertificate serves the certificate of a school host, signing it on
// first use; other server names are refused.
func (ca *DevCA) GetCertificate(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	host, _, reason, err := allowed(ca.routes, hello.ServerName)
	if err != nil {
		return ca.metrics.refuse(reason)
	}
	ca.mu.Lock()
	defer ca.mu.Unlock()
	if c := ca.leaves[host]; c != nil && time.Until(c.Leaf.NotAfter) > devLeafLife/3 {
		return c, nil
	}
	c, err := ca.issue(host)
	if err != nil {
		return nil, fmt.Errorf("development CA: certificate for %s: %w", host, err)
	}
	ca.leaves[host] = c
	return c, nil
}

// TLSConfig is the configuration of the proxy's TLS listener.
func (ca *DevCA) TLSConfig() *tls.Config { return baseTLSConfig(ca.GetCertificate) }

func (ca *DevCA) issue(host string) (*tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: randomSerial(),
		Subject:      pkix.Name{CommonName: host},
		DNSNames:     []string{host},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(devLeafLife),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		return nil, err
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	return &tls.Certificate{Certificate: [][]byte{der, ca.cert.Raw}, PrivateKey: key, Leaf: leaf}, nil
}

func (ca *DevCA) expiry(host string) (time.Time, bool) {
	ca.mu.Lock()
	defer ca.mu.Unlock()
	if c := ca.leaves[host]; c != nil {
		return c.Leaf.NotAfter, true
	}
	return time.Time{}, false
}

// TrustInstructions tells a person how to make their browser and tools
// trust the CA.
func (ca *DevCA) TrustInstructions(dir string) string {
	p := filepath.Join(dir, DevCACertFile)
	return fmt.Sprintf(`HTTPS uses a local development CA: %[1]s
Trust it once on this machine:
  Debian/Ubuntu: sudo cp %[1]s /usr/local/share/ca-certificates/campus-dev.crt && sudo update-ca-certificates
  macOS:         sudo security add-trusted-cert -d -r trustRoot -k /Library/Keychains/System.keychain %[1]s
  Firefox/Chrome (NSS): certutil -d sql:$HOME/.pki/nssdb -A -t C,, -n campus-dev -i %[1]s
  curl:          curl --cacert %[1]s https://<school host>/
  Chromium for one session: --ignore-certificate-errors-spki-list=%[2]s
Keep %[3]s private: whoever holds it can impersonate any site to a machine that trusts this CA.`,
		p, SPKIHash(ca.cert), filepath.Join(dir, DevCAKeyFile))
}

package main

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"math/big"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/accel-proxy/accel/internal/testproc"
)

// TestCheckBadConfigs runs "accel check" on each of policy's bad configs
// and accel's (values a package refuses): exit 1, and the message holds
// what the file's first line says (file, line and YAML path).
func TestCheckBadConfigs(t *testing.T) {
	files, err := filepath.Glob("../../policy/testdata/bad/*.yaml")
	more, _ := filepath.Glob("../../accel/testdata/bad/*.yaml")
	files = append(files, more...)
	if err != nil || len(files) == 0 {
		t.Fatalf("no bad configs: %v", err)
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			data, _ := os.ReadFile(f)
			first, _, _ := strings.Cut(string(data), "\n")
			want := strings.TrimSpace(strings.TrimPrefix(first, "#"))
			for _, args := range [][]string{{"check", "-config", f}, {"-t", "-config", f}} {
				var stdout, stderr bytes.Buffer
				if code := dispatch(args, &stdout, &stderr); code != 1 {
					t.Errorf("%q: exit %d, want 1\n%s", args, code, stderr.String())
				}
				for _, w := range strings.Split(want, " && ") {
					if !strings.Contains(stderr.String(), w) {
						t.Errorf("%q: %q\ndoes not contain %q", args, stderr.String(), w)
					}
				}
			}
		})
	}
}

// writeCert writes a self-signed ECDSA certificate and key as PEM files.
func writeCert(t *testing.T, dir, name string) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: name},
		DNSNames:     []string{name},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, name+".pem"), filepath.Join(dir, name+".key")
	os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600)
	return certFile, keyFile
}

// TestCheckCertificates: a good file with a TLS listener passes; a key
// that does not exist fails with the listener's line and path, which
// validation alone (files unread) would have accepted.
func TestCheckCertificates(t *testing.T) {
	dir := t.TempDir()
	writeCert(t, dir, "example.com")
	file := filepath.Join(dir, "accel.yaml")
	conf := "listen:\n  - address: \"127.0.0.1:0\"\n  - address: \"127.0.0.1:0\"\n    tls:\n      certificates:\n" +
		"        - {cert: example.com.pem, key: KEY}\npools:\n  - name: app\n    servers:\n      - address: \"127.0.0.1:9000\"\nroutes:\n  - pool: app\n"
	os.WriteFile(file, []byte(strings.Replace(conf, "KEY", "example.com.key", 1)), 0o600)
	var stdout, stderr bytes.Buffer
	if code := dispatch([]string{"check", "-config", file}, &stdout, &stderr); code != 0 {
		t.Fatalf("good config (relative certificate paths, beside the file): exit %d\n%s", code, stderr.String())
	}
	if !strings.Contains(stderr.String(), "configuration ok") {
		t.Errorf("no confirmation: %q", stderr.String())
	}
	os.WriteFile(file, []byte(strings.Replace(conf, "KEY", "missing.key", 1)), 0o600)
	stderr.Reset()
	if code := dispatch([]string{"check", "-config", file}, &stdout, &stderr); code != 1 {
		t.Fatalf("missing key: exit %d\n%s", code, stderr.String())
	}
	if want := "accel.yaml:5: listen[1].tls: certificate"; !strings.Contains(stderr.String(), want) || !strings.Contains(stderr.String(), "missing.key") {
		t.Errorf("message %q does not say %q and the key file", stderr.String(), want)
	}
}

// TestCheckBesideRunningInstance starts the real binary, then checks its
// own config with a second process: the check passes although the ports
// and the data dir are taken, creates nothing in the data dir, and the
// running instance keeps serving.
func TestCheckBesideRunningInstance(t *testing.T) {
	bin := testproc.AccelBinary(t)
	origin := startTextOrigin(t, "running")
	dir := t.TempDir()
	file := filepath.Join(dir, "accel.yaml")
	port, adminPort := freePort(t), freePort(t)
	os.WriteFile(file, []byte("listen:\n  - address: \"127.0.0.1:"+port+"\"\npools:\n  - name: app\n    servers:\n      - address: \""+origin+
		"\"\nroutes:\n  - pool: app\nadmin:\n  listen: \"127.0.0.1:"+adminPort+"\"\n"), 0o600)
	cmd := exec.Command(bin, "-config", file)
	logs := testproc.NewLog()
	cmd.Stderr = logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	// "listening" comes after the hand-over socket exists, which is part of
	// the data dir the check must leave alone.
	waitFor(t, logs, testproc.Listening)
	// The default data dir is beside the config file, whatever the
	// working directory.
	if _, err := os.Stat(filepath.Join(dir, "accel-data", "cache")); err != nil {
		t.Fatalf("data dir not beside the config: %v", err)
	}
	before := listDir(t, filepath.Join(dir, "accel-data"))

	out, err := exec.Command(bin, "check", "-config", file).CombinedOutput()
	if err != nil {
		t.Fatalf("check beside a running instance: %v\n%s", err, out)
	}
	if after := listDir(t, filepath.Join(dir, "accel-data")); after != before {
		t.Errorf("check changed the data dir:\nbefore %s\nafter  %s", before, after)
	}
	if got := getText(t, "http://127.0.0.1:"+port+"/x"); got != "running" {
		t.Errorf("running instance after the check: %q", got)
	}
	if strings.Contains(logs.String(), "level=ERROR") {
		t.Errorf("running instance logged errors:\n%s", logs)
	}
}

func listDir(t *testing.T, dir string) string {
	var b strings.Builder
	filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err == nil {
			b.WriteString(p + " ")
		}
		return nil
	})
	return b.String()
}

func TestCommands(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := dispatch([]string{"validate", "x"}, &stdout, &stderr); code != 2 || !strings.Contains(stderr.String(), `unknown command "validate"`) {
		t.Errorf("unknown command: %d %q", code, stderr.String())
	}
	stderr.Reset()
	if code := dispatch([]string{"-origin", "http://127.0.0.1:9000", "extra"}, &stdout, &stderr); code != 2 || !strings.Contains(stderr.String(), `unexpected argument "extra"`) {
		t.Errorf("stray argument: %d %q", code, stderr.String())
	}
	stderr.Reset()
	if code := dispatch([]string{"-h"}, &stdout, &stderr); code != 0 {
		t.Errorf("-h: exit %d", code)
	}
	for _, c := range []string{"check", "purge", "version", "-config"} {
		if !strings.Contains(stderr.String(), c) {
			t.Errorf("-h does not mention %s:\n%s", c, stderr.String())
		}
	}
	stdout.Reset()
	if code := dispatch([]string{"version"}, &stdout, &stderr); code != 0 || !strings.HasPrefix(stdout.String(), "accel ") || !strings.Contains(stdout.String(), runtime.Version()) {
		t.Errorf("version: %d %q", code, stdout.String())
	}
}

// getText GETs url from an accel that logged "listening".
func getText(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// TestExamplesPassCheck: every config in examples/ passes "accel check";
// the TLS one with certificates made where it names them, and the access
// log directory made.
func TestExamplesPassCheck(t *testing.T) {
	files, err := filepath.Glob("../../examples/*.yaml")
	if err != nil || len(files) < 3 {
		t.Fatalf("examples: %v %v", files, err)
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			dir := t.TempDir()
			os.Mkdir(filepath.Join(dir, "certs"), 0o700)
			writeCert(t, filepath.Join(dir, "certs"), "example.com.ecdsa")
			writeCert(t, filepath.Join(dir, "certs"), "example.com.rsa")
			file := filepath.Join(dir, filepath.Base(f))
			// The log directory is systemd's LogsDirectory; check wants it
			// to exist, as a start would.
			os.WriteFile(file, []byte(strings.ReplaceAll(string(data), "/var/log/accel", dir)), 0o600)
			var stdout, stderr bytes.Buffer
			if code := dispatch([]string{"check", "-config", file}, &stdout, &stderr); code != 0 {
				t.Errorf("exit %d:\n%s", code, stderr.String())
			}
		})
	}
}

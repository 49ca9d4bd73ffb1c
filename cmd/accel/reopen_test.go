package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/accel-proxy/accel/internal/testproc"
)

// TestSIGUSR1ReopensAccessLog drives logrotate's sequence with the real
// binary: move the file away, SIGUSR1, and the next line goes to a new
// file of the configured name while the moved one keeps the old lines.
func TestSIGUSR1ReopensAccessLog(t *testing.T) {
	bin := testproc.AccelBinary(t)
	origin := startTextOrigin(t, "hello")
	dir := t.TempDir()
	file := filepath.Join(dir, "accel.yaml")
	port := freePort(t)
	os.WriteFile(file, []byte("listen:\n  - address: \"127.0.0.1:"+port+"\"\npools:\n  - name: app\n    servers:\n      - address: \""+origin+
		"\"\nroutes:\n  - pool: app\nadmin:\n  listen: \"off\"\nlog:\n  access_file: access.log\n  access_format: combined\n"), 0o600)
	cmd := exec.Command(bin, "-config", file)
	logs := testproc.NewLog()
	cmd.Stderr = logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	waitFor(t, logs, testproc.Listening)
	url := "http://127.0.0.1:" + port
	getText(t, url+"/before")
	logPath := filepath.Join(dir, "access.log") // relative to the config file
	if err := os.Rename(logPath, logPath+".1"); err != nil {
		t.Fatal(err)
	}
	getText(t, url+"/moved") // still written to the moved file
	cmd.Process.Signal(syscall.SIGUSR1)
	waitFor(t, logs, "access log reopened")
	getText(t, url+"/after")

	old, _ := os.ReadFile(logPath + ".1")
	cur, err := os.ReadFile(logPath)
	if err != nil {
		t.Fatalf("no new access log after SIGUSR1: %v\n%s", err, logs)
	}
	if !strings.Contains(string(old), "GET /before") || !strings.Contains(string(old), "GET /moved") || strings.Contains(string(old), "/after") {
		t.Errorf("moved file:\n%s", old)
	}
	if !strings.Contains(string(cur), "GET /after") || strings.Count(string(cur), "\n") != 1 {
		t.Errorf("new file:\n%s", cur)
	}
	if strings.Contains(logs.String(), "msg=access") {
		t.Errorf("access lines went to stderr as well:\n%s", logs)
	}
}

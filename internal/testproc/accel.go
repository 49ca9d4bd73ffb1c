package testproc

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// built is the accel binary, built once per test process: each package
// whose tests run it pays one build, however many processes it starts.
var built struct {
	once sync.Once
	path string
	err  error
}

// AccelBinary builds cmd/accel (without -race: the process under test
// need not be slowed down with the test) and returns its path. The
// package's TestMain calls RemoveBuilt after its tests.
func AccelBinary(t testing.TB) string {
	t.Helper()
	built.once.Do(func() {
		dir, err := os.MkdirTemp("", "accel-bin")
		if err != nil {
			built.err = err
			return
		}
		built.path = filepath.Join(dir, "accel")
		out, err := exec.Command("go", "build", "-o", built.path, "github.com/accel-proxy/accel/cmd/accel").CombinedOutput()
		if err != nil {
			built.err = fmt.Errorf("%v\n%s", err, out)
		}
	})
	if built.err != nil {
		t.Fatalf("building accel: %v", built.err)
	}
	return built.path
}

// RemoveBuilt deletes what AccelBinary built, if anything.
func RemoveBuilt() {
	if built.path != "" {
		os.RemoveAll(filepath.Dir(built.path))
	}
}

// Accel is an accel process run from a config file, as an operator runs
// it. Its stderr (the server log) is kept per run for the test to wait on.
type Accel struct {
	t      testing.TB
	bin    string
	Config string
	// Log is the current run's stderr.
	Log  *Log
	cmd  *exec.Cmd
	done chan struct{} // closed when the current run has exited
	err  error         // the run's exit, once done is closed
}

// Listening is in the line accel logs once it serves.
const Listening = "msg=listening"

// StartAccel runs bin -config config and waits until it listens (after
// everything accel does before it serves, such as a fleet's purge
// replay). The process is killed when the test ends.
func StartAccel(t testing.TB, bin, config string) *Accel {
	t.Helper()
	return StartAccelUntil(t, bin, config, Listening)
}

// StartAccelUntil is StartAccel waiting only until accel logs a line
// holding every one of parts: for a test of what happens while it starts.
func StartAccelUntil(t testing.TB, bin, config string, parts ...string) *Accel {
	t.Helper()
	a := &Accel{t: t, bin: bin, Config: config}
	t.Cleanup(func() {
		if a.Running() {
			a.cmd.Process.Kill()
			<-a.done
		}
		if t.Failed() {
			t.Logf("log of accel -config %s (last run):\n%s", a.Config, a.Log)
		}
	})
	a.start(parts...)
	return a
}

// Start (re)starts the process and waits until it logs that it listens.
func (a *Accel) Start() {
	a.t.Helper()
	a.start(Listening)
}

func (a *Accel) start(until ...string) {
	a.t.Helper()
	if a.Running() {
		a.t.Fatal("accel is already running")
	}
	a.Log = NewLog()
	a.cmd = exec.Command(a.bin, "-config", a.Config)
	a.cmd.Stderr = a.Log
	if err := a.cmd.Start(); err != nil {
		a.t.Fatalf("starting accel: %v", err)
	}
	done := make(chan struct{})
	a.done = done
	cmd := a.cmd
	go func() {
		a.err = cmd.Wait()
		close(done)
	}()
	a.WaitLog(30*time.Second, until...)
}

// Running reports whether the current run has not exited.
func (a *Accel) Running() bool {
	if a.done == nil {
		return false
	}
	select {
	case <-a.done:
		return false
	default:
		return true
	}
}

// WaitLog waits until the current run logs a line holding every one of
// parts and returns it; it fails the test when the process exits first
// or timeout passes.
func (a *Accel) WaitLog(timeout time.Duration, parts ...string) string {
	a.t.Helper()
	line, err := a.Log.Wait(timeout, a.done, parts...)
	if err != nil {
		a.t.Fatalf("accel -config %s: %v; log:\n%s", a.Config, err, a.Log)
	}
	return line
}

// Stop sends SIGTERM and waits for a clean exit (the graceful drain).
func (a *Accel) Stop() {
	a.t.Helper()
	a.cmd.Process.Signal(syscall.SIGTERM)
	if err := a.wait(30 * time.Second); err != nil {
		a.t.Fatalf("accel after SIGTERM: %v; log:\n%s", err, a.Log)
	}
}

// Kill sends SIGKILL (a crash: nothing is flushed or closed by accel)
// and waits until the process is gone.
func (a *Accel) Kill() {
	a.t.Helper()
	a.cmd.Process.Kill()
	if err := a.wait(30 * time.Second); err == nil || !strings.Contains(err.Error(), "killed") {
		a.t.Fatalf("accel after SIGKILL: %v", err)
	}
}

// Signal sends sig (SIGSTOP and SIGCONT pause and resume the process).
func (a *Accel) Signal(sig os.Signal) {
	a.t.Helper()
	if err := a.cmd.Process.Signal(sig); err != nil {
		a.t.Fatal(err)
	}
}

func (a *Accel) wait(timeout time.Duration) error {
	select {
	case <-a.done:
		return a.err
	case <-time.After(timeout):
		return fmt.Errorf("still running after %v", timeout)
	}
}

// Log collects a process's output and wakes whoever waits for a line.
type Log struct {
	mu      sync.Mutex
	b       bytes.Buffer
	changed chan struct{} // closed and replaced at each write
}

func NewLog() *Log { return &Log{changed: make(chan struct{})} }

func (l *Log) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	close(l.changed)
	l.changed = make(chan struct{})
	return l.b.Write(p)
}

func (l *Log) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// Line returns the first complete line holding every one of parts, or "".
func (l *Log) Line(parts ...string) string {
	line, _ := l.find(parts)
	return line
}

func (l *Log) find(parts []string) (string, <-chan struct{}) {
	l.mu.Lock()
	defer l.mu.Unlock()
	text := l.b.String()
	if i := strings.LastIndexByte(text, '\n'); i >= 0 {
		text = text[:i]
	} else {
		text = ""
	}
next:
	for _, ln := range strings.Split(text, "\n") {
		for _, p := range parts {
			if !strings.Contains(ln, p) {
				continue next
			}
		}
		return ln, l.changed
	}
	return "", l.changed
}

var errExited = errors.New("the process exited")

// Wait waits until the log has a complete line holding every one of parts
// and returns it; it fails once exited is closed (nil: never) or timeout
// passes.
func (l *Log) Wait(timeout time.Duration, exited <-chan struct{}, parts ...string) (string, error) {
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	for {
		line, changed := l.find(parts)
		if line != "" {
			return line, nil
		}
		select {
		case <-changed:
		case <-exited:
			// What it wrote before exiting is all there is.
			if line, _ := l.find(parts); line != "" {
				return line, nil
			}
			return "", fmt.Errorf("%w before logging %q", errExited, parts)
		case <-timer.C:
			return "", fmt.Errorf("no log line with %q within %v", parts, timeout)
		}
	}
}

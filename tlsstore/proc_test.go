package tlsstore

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// proc is a redis-server or memcached process started by a test on a
// loopback port of its own, stopped when the test ends.
type proc struct {
	t       *testing.T
	name    string
	args    []string
	Addr    string
	logPath string // the process's output, shown if it fails to start
	cmd     *exec.Cmd
}

// TestMain quiets go-redis's package-wide logger, which reports every
// refused dial while a test has Redis stopped; the Store counts those.
func TestMain(m *testing.M) {
	redis.SetLogger(quietRedis{})
	os.Exit(m.Run())
}

type quietRedis struct{}

func (quietRedis) Printf(context.Context, string, ...any) {}

// freePort asks the kernel for a loopback port that is free right now.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func lookBinary(t *testing.T, name, pkg string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err != nil {
		t.Fatalf("%s not found: install the Debian package %s (apt-get install -y %s)", name, pkg, pkg)
	}
	return path
}

// startRedis runs a redis-server without persistence on 127.0.0.1.
func startRedis(t *testing.T) *proc {
	t.Helper()
	bin := lookBinary(t, "redis-server", "redis-server")
	port := freePort(t)
	p := &proc{t: t, name: bin, Addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), args: []string{
		"--bind", "127.0.0.1", "--port", strconv.Itoa(port),
		"--save", "", "--appendonly", "no", "--dir", t.TempDir(),
		"--daemonize", "no", "--loglevel", "warning",
	}}
	p.Start()
	t.Cleanup(p.Stop)
	return p
}

// startMemcached runs a memcached on 127.0.0.1, TCP only.
func startMemcached(t *testing.T) *proc {
	t.Helper()
	bin := lookBinary(t, "memcached", "memcached")
	port := freePort(t)
	args := []string{"-l", "127.0.0.1", "-p", strconv.Itoa(port), "-U", "0", "-m", "16"}
	if os.Geteuid() == 0 {
		args = append(args, "-u", "root") // memcached refuses to run as root unless told whom to run as
	}
	p := &proc{t: t, name: bin, Addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), args: args}
	p.Start()
	t.Cleanup(p.Stop)
	return p
}

// Start (re)starts the process on its port and waits until it answers.
func (p *proc) Start() {
	p.t.Helper()
	if p.logPath == "" {
		p.logPath = filepath.Join(p.t.TempDir(), "out.log")
	}
	out, err := os.OpenFile(p.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		p.t.Fatal(err)
	}
	defer out.Close() // the child has its own copy
	p.cmd = exec.Command(p.name, p.args...)
	p.cmd.Stdout = out
	p.cmd.Stderr = out
	if err := p.cmd.Start(); err != nil {
		p.t.Fatalf("starting %s: %v", filepath.Base(p.name), err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := p.ping()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			p.Stop()
			log, _ := os.ReadFile(p.logPath)
			p.t.Fatalf("%s on %s did not answer: %v\n%s", filepath.Base(p.name), p.Addr, err, log)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// ping sends one command both servers answer: redis's inline PING, and
// memcached's "version".
func (p *proc) ping() error {
	c, err := net.DialTimeout("tcp", p.Addr, time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(time.Second))
	cmd, want := "PING\r\n", "+PONG"
	if strings.Contains(p.name, "memcached") {
		cmd, want = "version\r\n", "VERSION"
	}
	if _, err := c.Write([]byte(cmd)); err != nil {
		return err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err
	}
	if !strings.HasPrefix(line, want) {
		return fmt.Errorf("unexpected answer %q", line)
	}
	return nil
}

// Stop kills the process and waits for it; stopping twice is harmless.
func (p *proc) Stop() {
	if p.cmd == nil {
		return
	}
	p.cmd.Process.Kill()
	p.cmd.Wait()
	p.cmd = nil
}

// redisCommand sends one inline command to a redis proc and returns the
// reply line, for checks from outside the Store.
func (p *proc) redisCommand(cmd string) string {
	p.t.Helper()
	c, err := net.DialTimeout("tcp", p.Addr, time.Second)
	if err != nil {
		p.t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(time.Second))
	if _, err := c.Write([]byte(cmd + "\r\n")); err != nil {
		p.t.Fatal(err)
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		p.t.Fatal(err)
	}
	return strings.TrimSpace(line)
}

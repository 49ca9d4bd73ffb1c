// Package testproc starts the real servers accel's tests talk to
// (redis-server, memcached, haproxy, and the accel binary itself) as
// processes on loopback addresses of their own, stopped when the test
// ends, and makes the certificates of their TLS servers. A missing
// binary fails the test with the package to install: these tests never
// quietly skip.
package testproc

import (
	"bufio"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Proc is a server process started by a test.
type Proc struct {
	t    testing.TB
	name string
	args []string
	// Addr is the loopback host:port the process serves on.
	Addr string
	cmd  *exec.Cmd
}

// FreePort returns a loopback port that is free right now, for a process
// the test starts to listen on. It is taken below the kernel's ephemeral
// range: a port from there (what listening on port 0 gives) may be
// handed, before the process binds it, to any outgoing connection of the
// tests running beside it, and the process then fails with "address
// already in use" (it did in CI). Below the range only another pick like
// this one can take it, one in twelve thousand.
func FreePort(t testing.TB) int {
	t.Helper()
	low := ephemeralLow()
	for range 100 {
		port := freePortBase + rand.IntN(low-freePortBase)
		l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		if err == nil {
			l.Close()
			return port
		}
	}
	t.Fatalf("no free loopback port between %d and %d", freePortBase, low)
	return 0
}

// freePortBase is the lowest port FreePort picks: above the ports
// services are commonly configured on.
const freePortBase = 20000

// ephemeralLow is where the kernel's ephemeral ports begin (Linux's
// default when it cannot be read, or when it leaves too little room).
func ephemeralLow() int {
	const linuxDefault = 32768
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return linuxDefault
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return linuxDefault
	}
	low, err := strconv.Atoi(f[0])
	if err != nil || low < freePortBase+1000 {
		return linuxDefault
	}
	return low
}

func lookBinary(t testing.TB, name, pkg string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err != nil {
		t.Fatalf("%s not found: install the Debian package %s (apt-get install -y %s)", name, pkg, pkg)
	}
	return path
}

// Redis runs a redis-server without persistence on 127.0.0.1.
func Redis(t testing.TB) *Proc {
	t.Helper()
	bin := lookBinary(t, "redis-server", "redis-server")
	port := FreePort(t)
	p := &Proc{t: t, name: bin, Addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), args: []string{
		"--bind", "127.0.0.1", "--port", strconv.Itoa(port),
		"--save", "", "--appendonly", "no", "--dir", t.TempDir(),
		"--daemonize", "no", "--loglevel", "warning",
	}}
	p.Start()
	t.Cleanup(p.Stop)
	return p
}

// Memcached runs a memcached on 127.0.0.1, TCP only.
func Memcached(t testing.TB) *Proc {
	t.Helper()
	bin := lookBinary(t, "memcached", "memcached")
	port := FreePort(t)
	args := []string{"-l", "127.0.0.1", "-p", strconv.Itoa(port), "-U", "0", "-m", "16"}
	if os.Geteuid() == 0 {
		// memcached refuses to run as root unless told whom to run as.
		args = append(args, "-u", "root")
	}
	p := &Proc{t: t, name: bin, Addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), args: args}
	p.Start()
	t.Cleanup(p.Stop)
	return p
}

// Start (re)starts the process on its port and waits until it answers.
func (p *Proc) Start() {
	p.t.Helper()
	p.cmd = exec.Command(p.name, p.args...)
	if testing.Verbose() {
		p.cmd.Stdout = os.Stderr
		p.cmd.Stderr = os.Stderr
	}
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
			p.t.Fatalf("%s on %s did not answer: %v", filepath.Base(p.name), p.Addr, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// ping sends one command both servers answer: redis's inline PING, and
// memcached's "version".
func (p *Proc) ping() error {
	cmd, want := "PING", "+PONG"
	if strings.Contains(p.name, "memcached") {
		cmd, want = "version", "VERSION"
	}
	line, err := p.command(cmd)
	if err != nil {
		return err
	}
	if !strings.HasPrefix(line, want) {
		return fmt.Errorf("unexpected answer %q", line)
	}
	return nil
}

func (p *Proc) command(cmd string) (string, error) {
	c, err := net.DialTimeout("tcp", p.Addr, time.Second)
	if err != nil {
		return "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(time.Second))
	if _, err := c.Write([]byte(cmd + "\r\n")); err != nil {
		return "", err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	return strings.TrimSpace(line), err
}

// Command sends one inline command (redis) or text command (memcached)
// and returns the first reply line, for checks from outside accel.
func (p *Proc) Command(cmd string) string {
	p.t.Helper()
	line, err := p.command(cmd)
	if err != nil {
		p.t.Fatal(err)
	}
	return line
}

// Stop kills the process and waits for it; stopping twice is harmless.
func (p *Proc) Stop() {
	if p.cmd == nil {
		return
	}
	p.cmd.Process.Kill()
	p.cmd.Wait()
	p.cmd = nil
}

package accel

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

// fdLimitChild, when set in the environment, makes TestAcceptAtFDLimit
// the child process: an accel whose descriptor limit is a few above what
// it holds. The variable holds the origin's address.
const fdLimitChild = "ACCEL_TEST_FDLIMIT_ORIGIN"

// TestAcceptAtFDLimit: at its descriptor limit accel logs the accept
// failure once (not once per retry, nor once per connection accepted at
// the limit), keeps answering the connections it has, and accepts the
// waiting connection as soon as a descriptor frees.
// The limit is lowered in a child process, so that no other test runs
// short of descriptors.
func TestAcceptAtFDLimit(t *testing.T) {
	if origin := os.Getenv(fdLimitChild); origin != "" {
		fdLimitServe(t, origin)
		return
	}
	o := startHitOrigin(t, 1024)
	cmd := exec.Command(os.Args[0], "-test.run=^TestAcceptAtFDLimit$")
	cmd.Env = append(os.Environ(), fdLimitChild+"="+o.addr)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	out := bufio.NewScanner(stdout)
	if !out.Scan() || !strings.HasPrefix(out.Text(), "addr ") {
		t.Fatalf("child said %q", out.Text())
	}
	addr := strings.TrimPrefix(out.Text(), "addr ")
	// The child's log, line by line; an accept failure is signalled.
	refused := make(chan string, 16)
	logDone := make(chan []string)
	go func() {
		var lines []string
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			lines = append(lines, sc.Text())
			if strings.Contains(sc.Text(), "accept failed") {
				refused <- sc.Text()
			}
		}
		logDone <- lines
	}()

	type client struct {
		c  net.Conn
		br *bufio.Reader
	}
	ask := func(cl client) <-chan error {
		done := make(chan error, 1)
		go func() {
			if _, err := cl.c.Write([]byte("GET /fd HTTP/1.1\r\nHost: bench.example\r\n\r\n")); err != nil {
				done <- err
				return
			}
			head, err := readHead(cl.br)
			if err == nil && !strings.HasPrefix(head, "HTTP/1.1 200 ") {
				err = fmt.Errorf("answer %q", head)
			}
			if err == nil {
				_, err = io.CopyN(io.Discard, cl.br, 1024)
			}
			done <- err
		}()
		return done
	}
	// The first connection's request is the miss that stores the object,
	// over an origin connection the pool keeps; then the child lowers its
	// limit.
	first, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer first.Close()
	first.SetDeadline(time.Now().Add(time.Minute))
	served := []client{{first, bufio.NewReader(first)}}
	if err := <-ask(served[0]); err != nil {
		t.Fatal(err)
	}
	io.WriteString(stdin, "limit\n")
	if !out.Scan() || out.Text() != "limited" {
		t.Fatalf("child said %q", out.Text())
	}
	// Connections are opened one at a time until one is not accepted:
	// each is answered, or the child logs that accept failed.
	var waiting client
	var waitingDone <-chan error
	var logLine string
	for waitingDone == nil {
		if len(served) == 64 {
			t.Fatal("64 connections served: the descriptor limit was not reached")
		}
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(time.Minute))
		cl := client{c, bufio.NewReader(c)}
		done := ask(cl)
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("connection %d: %v", len(served), err)
			}
			served = append(served, cl)
		case logLine = <-refused:
			waiting, waitingDone = cl, done
		}
	}
	if !strings.Contains(logLine, "out of file descriptors") {
		t.Errorf("accept failure logged as %s", logLine)
	}
	// The connections it has are still served at the limit.
	for i, cl := range served {
		if err := <-ask(cl); err != nil {
			t.Fatalf("connection %d at the limit: %v", i, err)
		}
	}
	// One closes: the waiting connection is accepted and answered.
	served[0].c.Close()
	if err := <-waitingDone; err != nil {
		t.Fatalf("waiting connection: %v", err)
	}
	if err := <-ask(waiting); err != nil {
		t.Fatal(err)
	}
	for _, cl := range served[1:] {
		cl.c.Close()
	}
	waiting.c.Close()
	stdin.Close()
	lines := <-logDone
	if err := cmd.Wait(); err != nil {
		t.Fatalf("child: %v\n%s", err, strings.Join(lines, "\n"))
	}
	failures := 0
	for _, l := range lines {
		if strings.Contains(l, "accept failed") {
			failures++
		}
	}
	if failures != 1 {
		t.Errorf("accept failures logged %d times, want once (at most one line per %v):\n%s", failures, acceptLogEvery, strings.Join(lines, "\n"))
	}
	t.Logf("%d connections served at the limit", len(served))
}

// readHead reads a response head up to its blank line.
func readHead(br *bufio.Reader) (string, error) {
	var head strings.Builder
	for {
		line, err := br.ReadString('\n')
		head.WriteString(line)
		if err != nil || line == "\r\n" {
			return head.String(), err
		}
	}
}

// fdLimitServe is the child: accel, then, once the parent says so (its
// first request stored the object), a descriptor limit 8 above what it
// holds, serving until its standard input closes.
func fdLimitServe(t *testing.T, origin string) {
	// Memory tier only: the persistent tier's files come and go.
	cfg := strings.Replace(hitConfig, "dir: DATADIR/cache", "dir: off", 1)
	s := startAccelLog(t, cfg, origin, t.TempDir(), os.Stderr)
	fmt.Printf("addr %s\n", s.Addrs()[0])
	in := bufio.NewReader(os.Stdin)
	if l, _ := in.ReadString('\n'); l != "limit\n" {
		t.Fatalf("parent said %q", l)
	}
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	lim.Cur = uint64(len(fds) + 8)
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	fmt.Println("limited")
	io.Copy(io.Discard, in)
}

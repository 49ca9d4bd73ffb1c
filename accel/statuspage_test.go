package accel

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// chromium finds Debian's headless browser. CI installs it, so there a
// missing browser fails the test; elsewhere it skips.
func chromium(t *testing.T) string {
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("CI") != "" {
		t.Fatal("no chromium on PATH (.ci/run installs Debian's chromium)")
	}
	t.Skip("no chromium on PATH")
	return ""
}

// TestStatusPageInBrowser loads the admin status page in headless
// Chromium, signs in with the token, sends traffic through accel and
// waits for the page's own counters to show it: 10 requests, a 90% hit
// ratio, the path in the top list. A screenshot goes to
// testdata/out/statuspage.png.
func TestStatusPageInBrowser(t *testing.T) {
	exe := chromium(t)
	o := startCountingOrigin(t)
	s := startAccel(t, metricsConfig, o.addr())

	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(exe),
		chromedp.NoSandbox, // CI runs as root
		chromedp.DisableGPU,
		chromedp.WindowSize(1280, 1000),
		chromedp.UserDataDir(t.TempDir()),
	)
	actx, cancelA := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancelA()
	ctx, cancel := chromedp.NewContext(actx)
	defer cancel()
	ctx, cancelT := context.WithTimeout(ctx, 90*time.Second)
	defer cancelT()

	page := "http://" + s.AdminAddr().String() + "/"
	text := func(id string) string {
		v, err := chromedp.Run(ctx, chromedp.TextContent(chromedp.ID(id)))
		if err != nil {
			t.Fatalf("reading #%s: %v", id, err)
		}
		return v
	}
	// waitText waits for the page (which polls /stats each second) to show
	// want in #id.
	waitText := func(id, want string) {
		t.Helper()
		js := `document.getElementById(` + quoteJS(id) + `).textContent === ` + quoteJS(want)
		wctx, c := context.WithTimeout(ctx, 20*time.Second)
		defer c()
		if err := chromedp.Do(wctx, chromedp.Poll[chromedp.Void](js, chromedp.WithPollingInterval(100*time.Millisecond))); err != nil {
			t.Fatalf("#%s never showed %q (shows %q): %v", id, want, text(id), err)
		}
	}
	if err := chromedp.Do(ctx,
		chromedp.Navigate(page),
		chromedp.WaitVisible(chromedp.ID("token")),
		chromedp.SendKeys(chromedp.ID("token"), adminToken),
		chromedp.Submit(chromedp.ID("token")),
		chromedp.WaitVisible(chromedp.ID("requests-total")),
	); err != nil {
		t.Fatalf("sign-in: %v", err)
	}
	waitText("conn", "live")
	waitText("requests-total", "0")
	if got := text("hit-ratio"); got != "–" {
		t.Errorf("hit ratio before any lookup: %q", got)
	}

	for range 10 {
		cachedGet(t, s, "/page/1") // one miss, nine hits
	}
	waitText("requests-total", "10")
	waitText("hit-ratio", "90.0%")
	if top := text("top-paths"); !strings.Contains(top, "/page/1") {
		t.Errorf("top paths do not list /page/1: %q", top)
	}
	if servers := text("servers"); !strings.Contains(servers, o.addr()) || !strings.Contains(servers, "up") {
		t.Errorf("servers table: %q", text("servers"))
	}

	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100)) // quality 100 gives a PNG
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join("testdata", "out")
	os.MkdirAll(out, 0o755)
	if err := os.WriteFile(filepath.Join(out, "statuspage.png"), png, 0o644); err != nil {
		t.Fatal(err)
	}
}

func quoteJS(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
}

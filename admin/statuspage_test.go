package admin

import (
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// TestStatusPageSession: without the token the page answers the sign-in
// form; a wrong token sets nothing; the right one sets a cookie that opens
// the page and the read-only endpoints, never a purge.
func TestStatusPageSession(t *testing.T) {
	_, base := startServer(t, Config{Token: testToken}, nil, Options{Purger: &fakePurger{}})
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	get := func(path, cookie string) (int, string) {
		req, _ := http.NewRequest("GET", base+path, nil)
		if cookie != "" {
			req.Header.Set("Cookie", cookie)
		}
		resp, err := noRedirect.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := get("/", ""); code != 401 || !strings.Contains(body, `name="token"`) {
		t.Fatalf("/ without a token: %d, want 401 and the sign-in form", code)
	}
	login := func(tok string) *http.Response {
		resp, err := noRedirect.PostForm(base+"/login", url.Values{"token": {tok}})
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	if resp := login("wrong"); resp.StatusCode != 401 || len(resp.Cookies()) != 0 {
		t.Fatalf("wrong token: %d, cookies %v", resp.StatusCode, resp.Cookies())
	}
	resp := login(testToken)
	if resp.StatusCode != 303 || len(resp.Cookies()) != 1 {
		t.Fatalf("right token: %d, cookies %v", resp.StatusCode, resp.Cookies())
	}
	c := resp.Cookies()[0]
	if !c.HttpOnly || c.SameSite != http.SameSiteStrictMode || strings.Contains(c.Value, testToken) {
		t.Errorf("cookie %+v: want HttpOnly, SameSite=Strict, not the token", c)
	}
	cookie := c.Name + "=" + c.Value
	if code, body := get("/", cookie); code != 200 || !strings.Contains(body, `id="hit-ratio"`) || strings.Contains(body, "src=\"http") {
		t.Errorf("/ with the session: %d", code)
	}
	for _, p := range []string{"/stats", "/metrics"} {
		if code, _ := get(p, cookie); code != 200 {
			t.Errorf("%s with the session: %d", p, code)
		}
	}
	req, _ := http.NewRequest("POST", base+"/purge/all", nil)
	req.Header.Set("Cookie", cookie)
	r2, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	r2.Body.Close()
	if r2.StatusCode != 401 {
		t.Errorf("purge with only the session cookie: %d, want 401", r2.StatusCode)
	}
	if code, _ := get("/stats", cookie+"x"); code != 401 {
		t.Errorf("altered cookie: %d", code)
	}
}

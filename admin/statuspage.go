package admin

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	_ "embed"
	"encoding/hex"
	"net/http"
	"strings"
)

// The status page and its sign-in form: one file each, embedded, with
// their style and script inline, so the page needs nothing from elsewhere.
var (
	//go:embed ui/status.html
	statusHTML string
	//go:embed ui/login.html
	loginHTML string
)

// sessionCookie carries a browser's proof of the token: an HMAC of a fixed
// label under the token, so the token itself is never stored in the
// browser, and changing the token ends every session.
const sessionCookie = "accel_admin"

func (s *Server) sessionValue() string {
	mac := hmac.New(sha256.New, s.tokenSum[:])
	mac.Write([]byte("accel admin session v1"))
	return hex.EncodeToString(mac.Sum(nil))
}

// sessionOK reports whether r carries a valid session cookie.
func (s *Server) sessionOK(r *http.Request) bool {
	if !s.hasToken {
		return false
	}
	c, err := r.Cookie(sessionCookie)
	if err != nil {
		return false
	}
	want := s.sessionValue()
	return subtle.ConstantTimeCompare([]byte(c.Value), []byte(want)) == 1
}

// statusPage serves GET /: the live page to a caller with the token or a
// session, the sign-in form to anyone else.
func (s *Server) statusPage(w http.ResponseWriter, r *http.Request) {
	if !s.authorized(r) && !s.sessionOK(r) {
		servePage(w, http.StatusUnauthorized, loginHTML)
		return
	}
	servePage(w, http.StatusOK, statusHTML)
}

// login serves POST /login: a right token sets the session cookie
// (HttpOnly, SameSite=Strict: other sites can neither read it nor make
// the browser send it) and goes to the page.
func (s *Server) login(w http.ResponseWriter, r *http.Request) {
	tok := strings.TrimSpace(r.PostFormValue("token"))
	sum := sha256.Sum256([]byte(tok))
	if !s.hasToken || subtle.ConstantTimeCompare(sum[:], s.tokenSum[:]) != 1 {
		s.log.Warn("status page sign-in refused: wrong token", "remote", r.RemoteAddr)
		servePage(w, http.StatusUnauthorized, strings.Replace(loginHTML, "<!--ERROR-->", `<span class="err">Wrong token.</span>`, 1))
		return
	}
	http.SetCookie(w, &http.Cookie{
		Name: sessionCookie, Value: s.sessionValue(), Path: "/",
		HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil,
	})
	http.Redirect(w, r, "./", http.StatusSeeOther)
}

func servePage(w http.ResponseWriter, status int, page string) {
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	// Inline script and style only; nothing may be loaded from elsewhere.
	h.Set("Content-Security-Policy", "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	w.Write([]byte(page))
}

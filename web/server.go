package web

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"embed"
	"encoding/hex"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/profileledger/profileledger/audit"
	"github.com/profileledger/profileledger/investigate"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// CSRFHeader is the header a POST must carry, with the page's token:
// a cross-site form cannot set it, and a cross-site script may not send
// it without a CORS preflight this server never grants.
const CSRFHeader = "X-Profileledger-CSRF"

// ContentSecurityPolicy is sent with every response: scripts and styles
// only from this server's own files (no inline script can run, even one
// that escaping missed), no frames, no plugins, requests only to itself.
const ContentSecurityPolicy = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

// Auth is what a request must show, if anything: a bearer token, or a
// user name and password (HTTP basic authentication). Empty: nothing.
type Auth struct {
	Token          string
	User, Password string
}

func (a Auth) set() bool { return a.Token != "" || a.User != "" }

// Config is what a Server serves.
type Config struct {
	// Store is the store's name; JS reaches its stream (for its counts
	// and the audit); Source reads it (investigate.FromStore of an open
	// store).
	Store  string
	JS     jetstream.JetStream
	Source investigate.Source
	// Auth, if set, is required of every request.
	Auth Auth
	// Remote accepts requests for any host name. Without it only
	// loopback names (localhost, 127.x, [::1]) are served, so that a web
	// site a browser visits cannot reach the server by DNS rebinding.
	Remote bool
	// FollowInterval is how often live mode looks for new events
	// (default 500 ms).
	FollowInterval time.Duration
	// Log gets the server's errors; nil for none.
	Log *slog.Logger
}

// Server is the investigator's web page: an http.Handler that reads a
// store and never writes to it.
type Server struct {
	cfg   Config
	pages *template.Template
	csrf  string
	mux   *http.ServeMux

	mu        sync.Mutex
	lastAudit *AuditResult
	auditing  bool
}

// AuditResult is the last audit the page ran.
type AuditResult struct {
	Started  time.Time     `json:"started"`
	Duration time.Duration `json:"duration_ns"`
	Report   *audit.Report `json:"report"`
	Error    string        `json:"error,omitempty"`
}

// New returns a Server for cfg.
func New(cfg Config) (*Server, error) {
	if cfg.Store == "" || cfg.JS == nil || cfg.Source == nil {
		return nil, errors.New("web: Config needs Store, JS and Source")
	}
	if cfg.FollowInterval <= 0 {
		cfg.FollowInterval = 500 * time.Millisecond
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	pages, err := template.New("").Funcs(funcs).ParseFS(templateFS, "templates/*.html")
	if err != nil {
		return nil, fmt.Errorf("web: templates: %w", err)
	}
	b := make([]byte, 16)
	rand.Read(b)
	s := &Server{cfg: cfg, pages: pages, csrf: hex.EncodeToString(b), mux: http.NewServeMux()}
	static, _ := fs.Sub(staticFS, "static")
	s.mux.Handle("GET /static/", http.StripPrefix("/static/", http.FileServerFS(static)))
	s.mux.HandleFunc("GET /{$}", s.storePage)
	s.mux.HandleFunc("GET /search", s.search)
	s.mux.HandleFunc("GET /p", s.profilePage)
	s.mux.HandleFunc("GET /item", s.itemPage)
	s.mux.HandleFunc("GET /api/store", s.apiStore)
	s.mux.HandleFunc("GET /api/events", s.apiEvents)
	s.mux.HandleFunc("GET /api/event", s.apiEvent)
	s.mux.HandleFunc("GET /api/state", s.apiState)
	s.mux.HandleFunc("GET /api/blame", s.apiBlame)
	s.mux.HandleFunc("GET /api/trace", s.apiTrace)
	s.mux.HandleFunc("GET /api/audit", s.apiAudit)
	s.mux.HandleFunc("POST /api/audit", s.runAudit)
	s.mux.HandleFunc("GET /api/live", s.apiLive)
	return s, nil
}

// ServeHTTP serves a request: security headers on everything, then the
// host check, authentication, and the page or API.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Security-Policy", ContentSecurityPolicy)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cache-Control", "no-store")
	if !s.cfg.Remote && !isLoopbackHost(r.Host) {
		http.Error(w, "profileledger ui: this server answers only to a loopback host name (localhost, 127.0.0.1, [::1])", http.StatusMisdirectedRequest)
		return
	}
	if s.cfg.Auth.set() && !s.authorized(w, r) {
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead && r.Method != http.MethodPost {
		http.Error(w, "profileledger ui is read-only: "+r.Method+" is not allowed", http.StatusMethodNotAllowed)
		return
	}
	s.mux.ServeHTTP(w, r)
}

// tokenCookie carries the token after a visit with ?token=.
const tokenCookie = "profileledger_token"

// authorized checks the request's credentials and answers it if they
// fail. A token comes as "Authorization: Bearer", as the cookie, or as
// ?token= (which sets the cookie and redirects to the URL without it).
func (s *Server) authorized(w http.ResponseWriter, r *http.Request) bool {
	a := s.cfg.Auth
	if a.Token != "" {
		if bearer, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok && equal(bearer, a.Token) {
			return true
		}
		if c, err := r.Cookie(tokenCookie); err == nil && equal(c.Value, a.Token) {
			return true
		}
		if q := r.URL.Query(); q.Has("token") && equal(q.Get("token"), a.Token) && r.Method == http.MethodGet {
			http.SetCookie(w, &http.Cookie{Name: tokenCookie, Value: a.Token, Path: "/", HttpOnly: true, SameSite: http.SameSiteStrictMode})
			q.Del("token")
			u := *r.URL
			u.RawQuery = q.Encode()
			http.Redirect(w, r, u.RequestURI(), http.StatusSeeOther)
			return false
		}
	}
	if a.User != "" {
		if u, p, ok := r.BasicAuth(); ok && equal(u, a.User) && equal(p, a.Password) {
			return true
		}
		w.Header().Set("WWW-Authenticate", `Basic realm="profileledger", charset="UTF-8"`)
	}
	http.Error(w, "profileledger ui: not authorized", http.StatusUnauthorized)
	return false
}

func equal(a, b string) bool { return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1 }

// isLoopbackHost reports whether a Host header names this machine by a
// loopback name or address.
func isLoopbackHost(host string) bool {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// CheckListen refuses an address to listen on that is not safe: one that
// is not a loopback address needs remote (the operator's explicit
// choice) and auth (a token or a user and password).
func CheckListen(addr string, remote bool, auth Auth) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("listen address %q: %w", addr, err)
	}
	if auth.User != "" && auth.Password == "" {
		return errors.New("basic authentication needs a password")
	}
	ip := net.ParseIP(host)
	loopback := strings.EqualFold(host, "localhost") || (ip != nil && ip.IsLoopback())
	switch {
	case loopback:
		return nil
	case !remote:
		return fmt.Errorf("listen address %q is not a loopback address: binding it needs the explicit flag to allow remote access, and a token or basic authentication", addr)
	case !auth.set():
		return fmt.Errorf("listen address %q is reachable from other machines: it needs a token or basic authentication", addr)
	}
	return nil
}

// Run serves s on l until ctx ends, then shuts down, giving open
// requests (live mode's streams end with ctx) a few seconds.
func Run(ctx context.Context, l net.Listener, s *Server) error {
	hs := &http.Server{Handler: s, ReadHeaderTimeout: 10 * time.Second,
		BaseContext: func(net.Listener) context.Context { return ctx }}
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(l) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := hs.Shutdown(sctx)
	<-errc
	return err
}

// ParseBasicAuth reads "user:password"; a password left out
// ("user" or "user:") is taken from fallback (an environment variable, so
// that it is not on the command line).
func ParseBasicAuth(s, fallback string) (user, password string, err error) {
	user, password, _ = strings.Cut(s, ":")
	if password == "" {
		password = fallback
	}
	if user == "" || password == "" {
		return "", "", errors.New(`want "user:password" (or "user" and the password in the environment)`)
	}
	return user, password, nil
}

// BaseURL is the URL to open for a server listening on addr: with the
// token, if there is one, so that the first visit sets its cookie.
func BaseURL(addr net.Addr, auth Auth) string {
	u := "http://" + addr.String() + "/"
	if auth.Token != "" {
		u += "?token=" + url.QueryEscape(auth.Token)
	}
	return u
}

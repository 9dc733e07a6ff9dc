package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats-server/v2/conf"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nkeys"
	"github.com/profileledger/profileledger"
	"github.com/profileledger/profileledger/internal/embedded"
	"github.com/profileledger/profileledger/roles"
)

// withoutComments drops the comment lines the commands print first.
func withoutComments(s string) string {
	var out []string
	for line := range strings.Lines(s) {
		if !strings.HasPrefix(line, "#") {
			out = append(out, line)
		}
	}
	return strings.Join(out, "")
}

func TestPermissionsPrintsTheGeneratedBlockOfEachRole(t *testing.T) {
	for _, role := range roles.All {
		want, err := roles.For("players", role)
		if err != nil {
			t.Fatal(err)
		}
		code, stdout, stderr := run(t, t.Context(), "permissions", "players", "-role", string(role))
		if code != exitOK {
			t.Fatalf("%s: exit %d: %s", role, code, stderr)
		}
		parsed, err := conf.Parse(withoutComments(stdout))
		if err != nil {
			t.Fatalf("%s: the output is not NATS configuration: %v\n%s", role, err, stdout)
		}
		raw, _ := json.Marshal(parsed["permissions"])
		var got roles.Permissions
		if err := json.Unmarshal(raw, &got); err != nil || fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("%s: printed %+v, want %+v (%v)", role, got, want, err)
		}
		code, stdout, _ = run(t, t.Context(), "permissions", "-json", "players", "-role", string(role))
		var fromJSON roles.Permissions
		if err := json.Unmarshal([]byte(stdout), &fromJSON); code != exitOK || err != nil || fmt.Sprint(fromJSON) != fmt.Sprint(want) {
			t.Fatalf("%s -json: exit %d, %v:\n%s", role, code, err, stdout)
		}
	}
	code, stdout, _ := run(t, t.Context(), "permissions", "players", "-role", "reader", "-user", "auditor", "-user-password", "pw")
	cfg, err := conf.Parse("users: [\n" + withoutComments(stdout) + "]\n")
	if code != exitOK || err != nil {
		t.Fatalf("-user: exit %d, %v:\n%s", code, err, stdout)
	}
	if u := cfg["users"].([]any)[0].(map[string]any); u["user"] != "auditor" || u["password"] != "pw" || u["permissions"] == nil {
		t.Fatalf("-user entry: %v", u)
	}
}

func TestPermissionsAndCreateUsageErrors(t *testing.T) {
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"permissions", "players"}, `unknown role ""`},
		{[]string{"permissions", "players", "-role", "owner"}, `unknown role "owner"`},
		{[]string{"permissions", "a.b", "-role", "holder"}, `store "a.b"`},
		{[]string{"permissions", "-role", "holder"}, "want one store"},
		{[]string{"permissions", "players", "-role", "holder", "-user-password", "x"}, "-user-password needs -user"},
		{[]string{"create"}, "want one store"},
		{[]string{"create", "a b"}, `store "a b"`},
		{[]string{"create", "players", "-token", "t", "-username", "u"}, "-token and -username"},
		{[]string{"serve", "-config", "x.conf", "-listen", "127.0.0.1:0"}, "-listen with -config"},
	} {
		code, stdout, stderr := run(t, t.Context(), tt.args...)
		if code != exitUsage || !strings.Contains(stderr, tt.want) || stdout != "" {
			t.Errorf("%q: exit %d, stderr %q; want %d and %q", tt.args, code, stderr, exitUsage, tt.want)
		}
	}
}

// writeFile writes content to name in dir and returns its path.
func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestServeLoadsAConfigFileWithTheGeneratedUsers(t *testing.T) {
	dir := t.TempDir()
	var users strings.Builder
	for _, u := range []struct{ name, role string }{{"ops", "admin"}, {"game", "holder"}, {"auditor", "reader"}} {
		code, stdout, stderr := run(t, t.Context(), "permissions", "players", "-role", u.role, "-user", u.name, "-user-password", u.name+"-pw")
		if code != exitOK {
			t.Fatalf("permissions: %s", stderr)
		}
		users.WriteString(stdout)
	}
	path := writeFile(t, dir, "nats.conf", "host: 127.0.0.1\nport: -1\njetstream {}\nauthorization {\n users: [\n"+users.String()+"]\n}\n")
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	srv := startServe(t, ctx, "-config", path, "-data", t.TempDir())
	defer srv.waitExit(t, exitOK)
	defer cancel()
	as := func(user string) []string {
		return []string{"-server", srv.url, "-username", user, "-password", user + "-pw", "-timeout", "5s"}
	}

	// The holder cannot create the store, and is told who can.
	code, _, stderr := run(t, ctx, append([]string{"create", "players"}, as("game")...)...)
	if code != exitFail || !strings.Contains(stderr, "profileledger create players") {
		t.Fatalf("create as holder: exit %d, stderr %q", code, stderr)
	}
	// The admin can.
	if code, stdout, stderr := run(t, ctx, append([]string{"create", "players", "-json"}, as("ops")...)...); code != exitOK || !strings.Contains(stdout, `"PL_players"`) {
		t.Fatalf("create as admin: exit %d\n%s%s", code, stdout, stderr)
	}
	// The holder plays.
	nc, err := nats.Connect(srv.url, nats.UserInfo("game", "game-pw"))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	st, err := profileledger.Open(ctx, js, "players", map[string]any{"coins": 0})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close(context.Background())
	s, err := st.StartSession(ctx, "alice")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Apply(ctx, "quest", profileledger.Inc("/coins", 5)); err != nil {
		t.Fatal(err)
	}
	if err := s.End(ctx); err != nil {
		t.Fatal(err)
	}
	if code, _, stderr := run(t, ctx, append([]string{"message", "players", "alice", "gift"}, as("game")...)...); code != exitOK {
		t.Fatalf("message as holder: %s", stderr)
	}
	// The reader reads, and may not write.
	if code, stdout, stderr := run(t, ctx, append([]string{"info", "players", "alice"}, as("auditor")...)...); code != exitOK || !strings.Contains(stdout, "pending") {
		t.Fatalf("info as reader: exit %d\n%s%s", code, stdout, stderr)
	}
	if code, _, stderr := run(t, ctx, append([]string{"audit", "players"}, as("auditor")...)...); code != exitOK {
		t.Fatalf("audit as reader: %s", stderr)
	}
	code, _, stderr = run(t, ctx, append([]string{"message", "players", "alice", "forged"}, slices.Replace(as("auditor"), 7, 8, "2s")...)...)
	if code != exitFail {
		t.Fatalf("message as reader: exit %d, stderr %q", code, stderr)
	}
}

// authCase is one way of authenticating: a server configuration and the
// command's flags.
type authCase struct {
	name   string
	server string   // the server's configuration, after host and port
	flags  []string // the right credentials
	env    map[string]string
}

func authCases(t *testing.T) []authCase {
	dir := t.TempDir()
	// nkey
	ukp, _ := nkeys.CreateUser()
	upub, _ := ukp.PublicKey()
	useed, _ := ukp.Seed()
	seedFile := writeFile(t, dir, "user.nk", string(useed))
	// creds: an operator, an account with JetStream, a user it signed
	okp, _ := nkeys.CreateOperator()
	opub, _ := okp.PublicKey()
	ojwt, err := jwt.NewOperatorClaims(opub).Encode(okp)
	if err != nil {
		t.Fatal(err)
	}
	akp, _ := nkeys.CreateAccount()
	apub, _ := akp.PublicKey()
	ac := jwt.NewAccountClaims(apub)
	ac.Limits.JetStreamLimits = jwt.JetStreamLimits{MemoryStorage: -1, DiskStorage: -1, Streams: -1, Consumer: -1}
	ajwt, err := ac.Encode(okp)
	if err != nil {
		t.Fatal(err)
	}
	skp, _ := nkeys.CreateAccount() // the system account operator mode needs
	spub, _ := skp.PublicKey()
	sjwt, err := jwt.NewAccountClaims(spub).Encode(okp)
	if err != nil {
		t.Fatal(err)
	}
	ckp, _ := nkeys.CreateUser()
	cpub, _ := ckp.PublicKey()
	cseed, _ := ckp.Seed()
	ujwt, err := jwt.NewUserClaims(cpub).Encode(akp)
	if err != nil {
		t.Fatal(err)
	}
	creds, _ := jwt.FormatUserConfig(ujwt, cseed)
	credsFile := writeFile(t, dir, "user.creds", string(creds))
	opFile := writeFile(t, dir, "op.jwt", ojwt)
	// TLS: a CA, the server's certificate, a client's
	ca, caKey := newCert(t, nil, nil, "profileledger test CA", true)
	srvCert, srvKey := newCert(t, ca, caKey, "127.0.0.1", false)
	cliCert, cliKey := newCert(t, ca, caKey, "client", false)
	caFile := writeFile(t, dir, "ca.pem", pemCert(ca))
	return []authCase{
		{"user and password", `authorization { user: alice, password: s3cret }`, []string{"-username", "alice", "-password", "s3cret"}, nil},
		{"user and password from the environment", `authorization { user: alice, password: s3cret }`, nil, map[string]string{"NATS_USER": "alice", "NATS_PASSWORD": "s3cret"}},
		{"token", `authorization { token: t0ken }`, []string{"-token", "t0ken"}, nil},
		{"token as a user without a password, as the nats CLI", `authorization { token: t0ken }`, []string{"-username", "t0ken"}, nil},
		{"token from NATS_TOKEN", `authorization { token: t0ken }`, nil, map[string]string{"NATS_TOKEN": "t0ken"}},
		{"nkey seed file", fmt.Sprintf(`authorization { users: [ { nkey: %s } ] }`, upub), []string{"-nkey", seedFile}, nil},
		{"creds file (JWT)", fmt.Sprintf("operator: %q\nsystem_account: %s\nresolver: MEMORY\nresolver_preload: { %s: %q, %s: %q }", opFile, spub, apub, ajwt, spub, sjwt), []string{"-creds", credsFile}, nil},
		{"TLS client certificate", fmt.Sprintf("tls { cert_file: %q, key_file: %q, ca_file: %q, verify: true }",
			writeFile(t, dir, "server.pem", pemCert(srvCert)), writeFile(t, dir, "server-key.pem", pemKey(t, srvKey)), caFile),
			[]string{"-tlsca", caFile, "-tlscert", writeFile(t, dir, "client.pem", pemCert(cliCert)), "-tlskey", writeFile(t, dir, "client-key.pem", pemKey(t, cliKey))}, nil},
	}
}

func TestCommandsConnectWithEachKindOfCredentials(t *testing.T) {
	for _, c := range authCases(t) {
		t.Run(c.name, func(t *testing.T) {
			path := writeFile(t, t.TempDir(), "nats.conf", "host: 127.0.0.1\nport: -1\njetstream {}\n"+c.server+"\n")
			ns, err := embedded.Start(embedded.Config{File: path, Dir: t.TempDir()})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { embedded.Stop(ns) })
			url := embedded.URL(ns)
			for _, k := range []string{"NATS_USER", "NATS_PASSWORD", "NATS_TOKEN", "NATS_CREDS", "NATS_NKEY", "NATS_CERT", "NATS_KEY", "NATS_CA", "NATS_URL"} {
				t.Setenv(k, c.env[k])
			}
			ctx := t.Context()
			flags := append([]string{"-server", url, "-timeout", "10s"}, c.flags...)
			// Without them, refused.
			if len(c.env) == 0 {
				code, _, stderr := run(t, ctx, "create", "players", "-server", url, "-timeout", "5s")
				if code != exitFail || !strings.Contains(stderr, "connect to") {
					t.Fatalf("without credentials: exit %d, stderr %q", code, stderr)
				}
			}
			// With them, every kind of command: an admin step, a write, reads.
			for _, args := range [][]string{
				{"create", "players"},
				{"message", "players", "alice", "gift"},
				{"info", "players", "alice"},
				{"audit", "players"},
				{"export", "players"},
			} {
				if code, stdout, stderr := run(t, ctx, append(args, flags...)...); code != exitOK {
					t.Fatalf("%v: exit %d\n%s%s", args, code, stdout, stderr)
				}
			}
		})
	}
}

// newCert returns a certificate for name (an IP address gets an IP SAN)
// signed by parent (self-signed if nil).
func newCert(t *testing.T, parent *x509.Certificate, parentKey *ecdsa.PrivateKey, name string, isCA bool) (*x509.Certificate, *ecdsa.PrivateKey) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl := &x509.Certificate{
		SerialNumber: serial, Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage:    x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		IsCA:        isCA, BasicConstraintsValid: true,
	}
	if ip := net.ParseIP(name); ip != nil {
		tmpl.IPAddresses = []net.IP{ip}
	}
	if parent == nil {
		parent, parentKey = tmpl, key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, parentKey)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return cert, key
}

func pemCert(c *x509.Certificate) string {
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw}))
}

func pemKey(t *testing.T, k *ecdsa.PrivateKey) string {
	der, err := x509.MarshalECPrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der}))
}

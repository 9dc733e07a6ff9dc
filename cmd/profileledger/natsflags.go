package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/profileledger/profileledger"
	"github.com/profileledger/profileledger/internal/names"
)

// natsFlags are the connection flags of the operator commands, spelled as
// the nats CLI spells them (with one dash): -server, the credential flags
// (authFlags) and -timeout. Left empty, -server falls back to NATS_URL,
// and then to nats://127.0.0.1:4222.
type natsFlags struct {
	server string
	*authFlags
	timeout time.Duration
}

// authFlags are the credential flags: -creds (a JWT credentials file),
// -nkey (an NKey seed file), -username and -password, -token, and
// -tlscert/-tlskey/-tlsca. Each one left empty falls back to the nats
// CLI's environment variable (NATS_CREDS, NATS_NKEY, NATS_USER,
// NATS_PASSWORD, NATS_TOKEN, NATS_CERT, NATS_KEY, NATS_CA). As with the nats
// CLI's --user, a -username without a -password is a token. (The nats
// CLI's --user is -username here: erase's -user names a user id.)
// Defaults are read at connect time, so that -h never prints a secret
// from the environment.
type authFlags struct {
	creds, nkey            string
	user, password, token  string
	tlsCert, tlsKey, tlsCA string
}

// addNATSFlags defines the connection flags on fs; timeout is -timeout's
// default, the bound on the whole command.
func addNATSFlags(fs *flag.FlagSet, timeout time.Duration) *natsFlags {
	f := &natsFlags{}
	fs.StringVar(&f.server, "server", "", "NATS server `URL`s, comma-separated (default $NATS_URL, or "+nats.DefaultURL+")")
	f.authFlags = addAuthFlags(fs)
	fs.DurationVar(&f.timeout, "timeout", timeout, "give up on the whole command after this `duration`")
	return f
}

// addAuthFlags defines the credential flags on fs.
func addAuthFlags(fs *flag.FlagSet) *authFlags {
	f := &authFlags{}
	fs.StringVar(&f.creds, "creds", "", "user credentials `file` (JWT and NKey seed; default $NATS_CREDS)")
	fs.StringVar(&f.nkey, "nkey", "", "user NKey seed `file` (default $NATS_NKEY)")
	fs.StringVar(&f.user, "username", "", "NATS user `name`, or a token if no password is given (default $NATS_USER)")
	fs.StringVar(&f.password, "password", "", "`password` (default $NATS_PASSWORD)")
	fs.StringVar(&f.token, "token", "", "authentication `token` (default $NATS_TOKEN)")
	fs.StringVar(&f.tlsCert, "tlscert", "", "TLS client certificate `file` (default $NATS_CERT)")
	fs.StringVar(&f.tlsKey, "tlskey", "", "TLS client key `file` (default $NATS_KEY)")
	fs.StringVar(&f.tlsCA, "tlsca", "", "TLS certificate authority `file` to verify the server (default $NATS_CA)")
	return f
}

// orEnv returns v, or the environment variable env if v is empty.
func orEnv(v, env string) string {
	if v != "" {
		return v
	}
	return os.Getenv(env)
}

// check reports a flag combination that cannot work; the command prints it
// as a usage error.
func (f *natsFlags) check() error {
	if f.timeout <= 0 {
		return fmt.Errorf("-timeout %v: must be positive", f.timeout)
	}
	return f.authFlags.check()
}

// check reports a credential flag combination that cannot work.
func (f *authFlags) check() error {
	cert, key := orEnv(f.tlsCert, "NATS_CERT"), orEnv(f.tlsKey, "NATS_KEY")
	user, token := orEnv(f.user, "NATS_USER"), orEnv(f.token, "NATS_TOKEN")
	switch {
	case (cert == "") != (key == ""):
		return errors.New("-tlscert and -tlskey go together")
	case f.token != "" && f.user != "":
		return errors.New("-token and -username: give one (a -username without -password is a token)")
	case f.password != "" && user == "":
		return errors.New("-password needs -username (or $NATS_USER)")
	case token != "" && user != "" && f.user == "" && f.token == "":
		return errors.New("NATS_TOKEN and NATS_USER are both set: unset one")
	}
	return nil
}

// url returns the server URLs to connect to.
func (f *natsFlags) url() string {
	if u := orEnv(f.server, "NATS_URL"); u != "" {
		return u
	}
	return nats.DefaultURL
}

// options returns the nats.go options the credential flags ask for.
func (f *authFlags) options() ([]nats.Option, error) {
	var opts []nats.Option
	if creds := orEnv(f.creds, "NATS_CREDS"); creds != "" {
		opts = append(opts, nats.UserCredentials(creds))
	}
	if seed := orEnv(f.nkey, "NATS_NKEY"); seed != "" {
		opt, err := nats.NkeyOptionFromSeed(seed)
		if err != nil {
			return nil, fmt.Errorf("nkey %s: %w", seed, err)
		}
		opts = append(opts, opt)
	}
	// A flag wins over the environment: -token over NATS_USER, -username
	// over NATS_TOKEN.
	user, password, token := orEnv(f.user, "NATS_USER"), orEnv(f.password, "NATS_PASSWORD"), orEnv(f.token, "NATS_TOKEN")
	if f.token != "" {
		user = ""
	}
	if f.user != "" {
		token = ""
	}
	switch {
	case user != "" && password != "":
		opts = append(opts, nats.UserInfo(user, password))
	case user != "":
		opts = append(opts, nats.Token(user))
	case token != "":
		opts = append(opts, nats.Token(token))
	}
	if cert := orEnv(f.tlsCert, "NATS_CERT"); cert != "" {
		opts = append(opts, nats.ClientCert(cert, orEnv(f.tlsKey, "NATS_KEY")))
	}
	if ca := orEnv(f.tlsCA, "NATS_CA"); ca != "" {
		opts = append(opts, nats.RootCAs(ca))
	}
	return opts, nil
}

// connect connects as the flags say, naming the connection
// "profileledger-<command>".
func (f *natsFlags) connect(command string) (*nats.Conn, jetstream.JetStream, error) {
	opts, err := f.options()
	if err != nil {
		return nil, nil, err
	}
	opts = append(opts, nats.Name("profileledger-"+command))
	nc, err := nats.Connect(f.url(), opts...)
	if err != nil {
		return nil, nil, fmt.Errorf("connect to %s: %w", redactURL(f.url()), err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, nil, err
	}
	return nc, js, nil
}

// errNoStore says that a store an operator command names does not exist.
var errNoStore = errors.New("no such store")

// openCLIStore opens the existing store called name for an operator command
// that needs no profile data (Message, Info, Erase): T is any JSON object.
// It never creates a store: a missing stream is errNoStore. The store is
// opened as it was created (replicas, storage, event size limit), so that
// Open's check of the existing configuration passes.
func openCLIStore(ctx context.Context, js jetstream.JetStream, name, node string) (*profileledger.Store[map[string]any], error) {
	n, err := names.New(name)
	if err != nil {
		return nil, err
	}
	stream, err := js.Stream(ctx, n.Stream)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return nil, fmt.Errorf("%w: %s (stream %s not found)", errNoStore, name, n.Stream)
	}
	if err != nil {
		return nil, fmt.Errorf("store %s: %w", name, err)
	}
	cfg := stream.CachedInfo().Config
	opts := []profileledger.Option{profileledger.WithReplicas(max(cfg.Replicas, 1))}
	if cfg.Storage == jetstream.MemoryStorage {
		opts = append(opts, profileledger.WithMemoryStorage())
	}
	// Open asks for room for an event of its limit and 4 KiB of headers.
	if cfg.MaxMsgSize > 0 {
		opts = append(opts, profileledger.WithMaxEventSize(max(int(cfg.MaxMsgSize)-4096, 1024)))
	}
	host, _ := os.Hostname()
	opts = append(opts, profileledger.WithNode(node+"@"+host))
	return profileledger.Open(ctx, js, name, map[string]any{}, opts...)
}

// closeCLIStore closes a store an operator command opened.
func closeCLIStore(st *profileledger.Store[map[string]any]) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st.Close(ctx)
}

// parseArgs parses args into fs, flags before, between or after the
// positional arguments (as the nats CLI and gh allow), and returns the
// positional ones; after "--" everything is positional. If ok is false the
// command must return code: exitOK after -h, exitUsage after a bad flag.
func (m *Main) parseArgs(fs *flag.FlagSet, args []string) (pos []string, code int, ok bool) {
	for rest := args; ; {
		if err := fs.Parse(rest); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, exitOK, false
			}
			return nil, exitUsage, false // flag printed the error and the usage
		}
		left := fs.Args()
		if consumed := len(rest) - len(left); consumed > 0 && rest[consumed-1] == "--" {
			return append(pos, left...), exitOK, true
		}
		if len(left) == 0 {
			return pos, exitOK, true
		}
		pos, rest = append(pos, left[0]), left[1:]
	}
}

// metaFlag is a repeatable -meta key=value flag.
type metaFlag map[string]string

func (f metaFlag) String() string {
	parts := make([]string, 0, len(f))
	for k, v := range f {
		parts = append(parts, k+"="+v)
	}
	return strings.Join(parts, ",")
}

func (f metaFlag) Set(s string) error {
	k, v, ok := strings.Cut(s, "=")
	if !ok || k == "" {
		return fmt.Errorf("want key=value, got %q", s)
	}
	f[k] = v
	return nil
}

// redactURL hides a password in u. (The bench's report redacts its
// -server URL the same way, in internal/benchrun.)
func redactURL(u string) string {
	p, err := url.Parse(u)
	if err != nil {
		return "(server URL)"
	}
	return p.Redacted()
}

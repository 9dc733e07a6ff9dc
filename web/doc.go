// Package web is the investigator's web page: a read-only http.Handler
// over one store, served by "profileledger ui". Its pages are rendered by
// html/template from embedded files, and a small embedded script (no CDN,
// no build step) draws what the JSON APIs return:
//
//	/                         the store: profiles, event count, the last audit (and a button to run it)
//	/search?q=                a key goes to its profile, a user id to its profiles, anything else to its trace
//	/p?key=K[&seq=S&index=I]  a profile: its timeline page by page, an event's ops, who, why and diff,
//	                          the data at any version, blame of any field, live mode
//	/p?key=K&trade=T          this profile's side of trade T
//	/item?value=V[&path=P]    a value's trace as a graph: profiles, moves in time order, dupes in red
//
// The APIs, each a GET with query parameters (keys are arbitrary UTF-8):
// /api/store, /api/events?key&from|before&limit (one page, never the whole
// log), /api/event?key&seq&index, /api/state?key&v, /api/blame?key&path,
// /api/trace?value&path, /api/live?key&from (server-sent events), and
// /api/audit (GET: the last result; POST with CSRFHeader: run it).
//
// It is safe by default: every response forbids inline scripts
// (ContentSecurityPolicy), every string from the store reaches the page as
// escaped text, only loopback host names are answered unless Config.Remote,
// and CheckListen refuses a non-loopback address without the operator's
// explicit choice and a token or basic authentication.
//
//	srv, err := web.New(web.Config{Store: "players", JS: js, Source: investigate.FromStore(st)})
//	l, err := net.Listen("tcp", "127.0.0.1:8428")
//	err = web.Run(ctx, l, srv)
package web

package demorun

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/profileledger/profileledger"
)

// MetricsServer serves the demo's Prometheus registry at /metrics: every
// game server's Store.Collector, labelled server=<name>, and the Go
// runtime's and the process's own metrics.
type MetricsServer struct {
	// URL is where the metrics are served: http://host:port/metrics.
	URL  string
	reg  *prometheus.Registry
	srv  *http.Server
	done chan struct{} // closed when Serve has returned
}

// ServeMetrics listens on addr (host:port; port 0 picks a free one) and
// serves /metrics until Close.
func ServeMetrics(addr string) (*MetricsServer, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	ms := &MetricsServer{
		reg:  reg,
		URL:  "http://" + ln.Addr().String() + "/metrics",
		srv:  &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second},
		done: make(chan struct{}),
	}
	go func() {
		defer close(ms.done)
		ms.srv.Serve(ln)
	}()
	return ms, nil
}

// register adds a game server's store to the registry. It does nothing on
// a nil MetricsServer (no -metrics).
func (ms *MetricsServer) register(server string, st *profileledger.Store[Player]) error {
	if ms == nil {
		return nil
	}
	return prometheus.WrapRegistererWith(prometheus.Labels{"server": server}, ms.reg).Register(st.Collector())
}

// Close stops serving and waits for the server to stop.
func (ms *MetricsServer) Close() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := ms.srv.Shutdown(ctx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		ms.srv.Close()
	}
	<-ms.done
}

// StoreHealth is a game server's Store.Health when play ended.
type StoreHealth struct {
	Server         string   `json:"server"`
	Critical       bool     `json:"critical"`
	Reasons        []string `json:"reasons,omitempty"`
	Reachable      bool     `json:"nats_reachable"`
	Errors         uint64   `json:"errors"`
	SessionsLost   uint64   `json:"sessions_lost"`
	RenewalsLate   uint64   `json:"renewals_late"`
	RenewalsFailed uint64   `json:"renewals_failed"`
}

// healthReport returns every game server's health.
func (d *demo) healthReport() []StoreHealth {
	out := make([]StoreHealth, 0, len(d.servers))
	for _, gs := range d.servers {
		h := gs.store.Health()
		out = append(out, StoreHealth{
			Server: gs.name, Critical: h.Critical, Reasons: h.Reasons, Reachable: h.Reachable,
			Errors: h.ErrorsTotal, SessionsLost: h.SessionsLost, RenewalsLate: h.RenewalsLate, RenewalsFailed: h.RenewalsFailed,
		})
	}
	return out
}

// noteCritical is a game server's critical handler: it queues a line for
// the progress output (the play loop prints it), and drops it if the
// queue is full or nobody prints any more.
func (d *demo) noteCritical(server string, critical bool, h profileledger.Health) {
	line := fmt.Sprintf("%s: store no longer critical", server)
	if critical {
		line = fmt.Sprintf("%s: store critical (%s)", server, strings.Join(h.Reasons, "; "))
	}
	select {
	case d.healthNotes <- line:
	default:
	}
}

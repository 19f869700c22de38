// Command metrics runs a cluster of gossip nodes in one process and serves
// their metrics for Prometheus, through the OpenTelemetry SDK and its
// Prometheus exporter:
//
//	go run ./metrics -listen 127.0.0.1:9464
//	curl -s 127.0.0.1:9464/metrics | grep plumtree_
//
// The library itself depends only on the OpenTelemetry API (package
// observe); the SDK and the exporter are this program's choice.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"

	"github.com/plumtree-go/plumtree/examples/internal/memcluster"
	"github.com/plumtree-go/plumtree/gossip"
	"github.com/plumtree-go/plumtree/observe"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:9464", "address to serve /metrics on")
	nodes := flag.Int("nodes", 10, "nodes in the cluster")
	every := flag.Duration("every", 200*time.Millisecond, "time between broadcasts")
	loss := flag.Float64("loss", 0.05, "datagram loss rate of the in-memory network")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, *listen, *nodes, *every, *loss); err != nil {
		log.Fatal(err)
	}
}

func run(ctx context.Context, listen string, nodes int, every time.Duration, loss float64) error {
	reg := prometheus.NewRegistry()
	c, err := startObserved(reg, nodes, loss)
	if err != nil {
		return err
	}
	defer c.Close()

	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: promhttp.HandlerFor(reg, promhttp.HandlerOpts{}), ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(ln)
	defer srv.Close()
	fmt.Printf("serving metrics of %d nodes on http://%s/metrics (Ctrl-C to stop)\n", nodes, ln.Addr())

	tick := time.NewTicker(every)
	defer tick.Stop()
	for i := 0; ; i++ {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
			msg := fmt.Appendf(nil, "message %d", i)
			if _, err := c.Broadcast(ctx, i%nodes, msg); err != nil && !errors.Is(err, context.Canceled) {
				return err
			}
		}
	}
}

// startObserved starts a cluster whose metrics reg gathers.
func startObserved(reg *prometheus.Registry, nodes int, loss float64) (*memcluster.Cluster, error) {
	exporter, err := otelprom.New(otelprom.WithRegisterer(reg))
	if err != nil {
		return nil, err
	}
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(exporter))
	obs, err := observe.New(observe.WithMeterProvider(mp))
	if err != nil {
		return nil, err
	}
	cfg := gossip.LANConfig()
	c, err := memcluster.Start(memcluster.Options{Nodes: nodes, Config: cfg, Observer: obs})
	if err != nil {
		return nil, err
	}
	c.Net.SetDropRate(loss)
	for _, n := range c.Nodes {
		if _, err := obs.WatchNode(n.Plumtree.Stats); err != nil {
			c.Close()
			return nil, err
		}
		if _, err := obs.WatchTransport(n.Transport); err != nil {
			c.Close()
			return nil, err
		}
	}
	return c, nil
}

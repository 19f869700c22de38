// Command tracing runs a cluster of gossip nodes in one process, broadcasts
// a message, and exports the trace it leaves: a span at the origin, and one
// span at each node that delivered it, whose parent is the span of the node
// it got the payload from. The trace is the dissemination tree.
//
//	go run ./tracing                              # spans as JSON on standard output
//	go run ./tracing -otlp localhost:4318         # to an OTLP/HTTP collector (Jaeger, say)
//
// Each node has its own TracerProvider whose resource names the node
// (service.instance.id), as separate processes would.
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"os"
	"sync"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/exporters/stdout/stdouttrace"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/plumtree-go/plumtree/examples/internal/memcluster"
	"github.com/plumtree-go/plumtree/gossip"
	"github.com/plumtree-go/plumtree/observe"
)

func main() {
	nodes := flag.Int("nodes", 20, "nodes in the cluster")
	otlp := flag.String("otlp", "", "OTLP/HTTP endpoint (host:port) to export to; standard output if empty")
	flag.Parse()
	var exp sdktrace.SpanExporter
	var err error
	if *otlp != "" {
		exp, err = otlptracehttp.New(context.Background(), otlptracehttp.WithEndpoint(*otlp), otlptracehttp.WithInsecure())
	} else {
		exp, err = stdouttrace.New(stdouttrace.WithPrettyPrint(), stdouttrace.WithWriter(os.Stdout))
	}
	if err != nil {
		log.Fatal(err)
	}
	if err := run(context.Background(), *nodes, sdktrace.NewSimpleSpanProcessor(exp), sdktrace.AlwaysSample()); err != nil {
		log.Fatal(err)
	}
	if err := exp.Shutdown(context.Background()); err != nil {
		log.Fatal(err)
	}
}

// run broadcasts one traced message across a cluster of n nodes and waits
// until every other node delivered it; spans go to sp. Every node samples
// with sampler, wrapped in ParentBased: the origin decides for the trace.
func run(ctx context.Context, n int, sp sdktrace.SpanProcessor, sampler sdktrace.Sampler) error {
	var providers []*sdktrace.TracerProvider
	var wg sync.WaitGroup
	wg.Add(n - 1)
	c, err := memcluster.Start(memcluster.Options{
		Nodes:  n,
		Config: gossip.LANConfig(),
		Tracer: func(i int) gossip.Tracer {
			tp := sdktrace.NewTracerProvider(
				sdktrace.WithSpanProcessor(sp),
				sdktrace.WithSampler(sdktrace.ParentBased(sampler)),
				sdktrace.WithResource(resource.NewSchemaless(
					attribute.String("service.name", "plumtree-example"),
					attribute.String("service.instance.id", fmt.Sprintf("node-%02d", i)),
				)),
			)
			providers = append(providers, tp)
			return observe.NewTracer(observe.WithTracerProvider(tp))
		},
		OnDeliver: func(int, gossip.Delivery[string, []byte]) { wg.Done() },
	})
	if err != nil {
		return err
	}
	defer c.Close()
	if _, err := c.Broadcast(ctx, 0, []byte("traced hello")); err != nil {
		return err
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(time.Minute):
		return fmt.Errorf("not every node delivered within a minute")
	}
	c.Close()
	for _, tp := range providers {
		if err := tp.ForceFlush(ctx); err != nil {
			return err
		}
	}
	return nil
}

package main

import (
	"testing"
	"time"

	"go.opentelemetry.io/otel/metric/noop"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"

	"github.com/plumtree-go/plumtree/gossip"
	"github.com/plumtree-go/plumtree/observe"
)

// The cost of observation on the engine's receive path:
//
//	cd examples && go test -run '^$' -bench Observation -benchmem ./metrics

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func benchReceive(b *testing.B, obs gossip.Observer) {
	cfg := gossip.DefaultConfig()
	cfg.MessageCacheMaxSize = 1 << 16
	e, err := gossip.NewEngine(gossip.EngineOptions[int]{Self: 0, Config: cfg, Seed: 1, Observer: obs})
	if err != nil {
		b.Fatal(err)
	}
	members := make([]int, 50)
	for i := range members {
		members[i] = i + 1
	}
	e.SetMembers(t0, members)
	e.Outbox()
	from := e.EagerPeers()[0]
	m := gossip.Msg[int]{Kind: gossip.KindGossip, Round: 2, Origin: 7, Timestamp: t0.UnixNano(), Payload: gossip.Payload{Data: make([]byte, 256)}}
	now := t0
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		m.ID = gossip.MessageID{byte(i), byte(i >> 8), byte(i >> 16), byte(i >> 24), 1}
		now = now.Add(time.Microsecond)
		e.Receive(now, from, &m)
		e.Outbox()
		if i%1024 == 0 {
			e.Tick(now.Add(time.Second))
			e.Outbox()
		}
	}
}

func BenchmarkObservation(b *testing.B) {
	b.Run("none", func(b *testing.B) { benchReceive(b, nil) })
	b.Run("otel-noop", func(b *testing.B) {
		obs, err := observe.New(observe.WithMeterProvider(noop.NewMeterProvider()))
		if err != nil {
			b.Fatal(err)
		}
		benchReceive(b, obs)
	})
	b.Run("otel-sdk", func(b *testing.B) {
		mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(sdkmetric.NewManualReader()))
		defer mp.Shutdown(b.Context())
		obs, err := observe.New(observe.WithMeterProvider(mp))
		if err != nil {
			b.Fatal(err)
		}
		benchReceive(b, obs)
	})
}

// Command stack composes a cluster by hand from the library's parts, three
// nodes in one process on loopback:
//
//   - transport: QUIC (transport/quic) with mutual TLS from a development CA
//     (transport/devcert: UNSAFE FOR PRODUCTION, its key lives in memory and
//     only this process can use it; bring your own certificates in
//     quic.Config.TLS);
//   - compression: zstd (compressor/zstd) for every payload of 64 bytes or
//     more;
//   - messages: protocol buffers (codec/protobuf), here the well-known
//     google.protobuf.Struct, so no protoc is needed;
//   - membership: hashicorp/memberlist (membership/memberlist), each node
//     joining the first.
//
// One node broadcasts one message; every other node prints it:
//
//	go run ./stack
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"os"
	"os/signal"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/hashicorp/memberlist"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/plumtree-go/plumtree/codec/protobuf"
	"github.com/plumtree-go/plumtree/compressor/zstd"
	"github.com/plumtree-go/plumtree/gossip"
	plummember "github.com/plumtree-go/plumtree/membership/memberlist"
	"github.com/plumtree-go/plumtree/transport/devcert"
	"github.com/plumtree-go/plumtree/transport/quic"
)

func main() {
	nodes := flag.Int("nodes", 3, "nodes in the cluster")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	msg, err := structpb.NewStruct(map[string]any{
		"event":    "deploy",
		"service":  "checkout",
		"version":  "2.4.1",
		"replicas": 3,
		"regions":  []any{"eu-west-1", "us-east-1"},
		"notes":    strings.Repeat("all green; ", 20), // compresses well
	})
	if err != nil {
		log.Fatal(err)
	}
	if _, err := run(ctx, *nodes, msg, os.Stdout); err != nil {
		log.Fatal(err)
	}
}

// result is what run observed.
type result struct {
	// Delivered holds what each node other than the origin delivered.
	Delivered map[string]*structpb.Struct
	// Encoded is the size of the message as protobuf, before compression.
	Encoded int
	// FrameBytes is the size of the largest Gossip frame the origin sent:
	// the message as it went on the wire, compressed, with the frame's
	// header.
	FrameBytes int
}

// member is one node and the parts it is made of.
type member struct {
	name string
	tr   *quic.Transport
	ml   *plummember.Membership[string]
	node *gossip.Plumtree[string, *structpb.Struct]
}

// run starts n nodes, broadcasts msg from the first and waits until every
// other node has delivered it (or ctx is done).
func run(ctx context.Context, n int, msg *structpb.Struct, out io.Writer) (*result, error) {
	if n < 2 {
		return nil, fmt.Errorf("need at least 2 nodes, not %d", n)
	}
	ca, err := devcert.NewUnsafeCA()
	if err != nil {
		return nil, err
	}
	// One codec and one compressor serve every node: both are safe for
	// concurrent use.
	pbCodec, err := protobuf.New[*structpb.Struct]()
	if err != nil {
		return nil, err
	}
	zc, err := zstd.New(3)
	if err != nil {
		return nil, err
	}
	cfg := gossip.LANConfig()
	cfg.Compression.MinSize = 64 // smaller payloads are not worth compressing

	var (
		mu        sync.Mutex
		delivered = make(map[string]*structpb.Struct)
		all       = make(chan struct{})
	)
	var frameBytes atomic.Int64 // written by the origin's observer
	var members []*member
	defer func() {
		// Stop in reverse, each node leaving memberlist while the others
		// still run to acknowledge its goodbye.
		for _, m := range members {
			if m.node != nil {
				m.node.Close()
			}
		}
		for i := len(members) - 1; i >= 0; i-- {
			if members[i].ml != nil {
				members[i].ml.Close()
			}
			members[i].tr.Close()
		}
	}()

	for i := range n {
		m := &member{name: fmt.Sprintf("node-%d", i)}
		tlsConf, err := ca.UnsafeMutualTLS(m.name, "127.0.0.1")
		if err != nil {
			return nil, err
		}
		if m.tr, err = quic.Listen("127.0.0.1:0", quic.Config{TLS: tlsConf}); err != nil {
			return nil, err
		}
		members = append(members, m)

		// memberlist's local preset suits nodes on one host; it takes a
		// port of its own, separate from the QUIC transport's.
		mlc := memberlist.DefaultLocalConfig()
		mlc.Name, mlc.BindAddr, mlc.BindPort = m.name, "127.0.0.1", 0
		mlc.LogOutput = io.Discard
		mlc.TCPTimeout = memberlist.DefaultLANConfig().TCPTimeout // the local preset's 1 s is too short for a join on a busy machine
		var join []string
		if i > 0 {
			join = []string{members[0].ml.Memberlist().LocalNode().FullAddress().Addr}
		}
		if m.ml, err = plummember.New(plummember.Config[string]{Memberlist: mlc, Addr: m.tr.LocalAddr(), Join: join}); err != nil {
			return nil, err
		}

		name := m.name
		var observer gossip.Observer
		if i == 0 {
			observer = gossip.ObserverFunc(func(e gossip.Event) {
				if e.Kind != gossip.EventSent || e.Type != gossip.KindGossip {
					return
				}
				for old := frameBytes.Load(); int64(e.Bytes) > old; old = frameBytes.Load() {
					if frameBytes.CompareAndSwap(old, int64(e.Bytes)) {
						return
					}
				}
			})
		}
		m.node, err = gossip.New(cfg, gossip.Options[string, *structpb.Struct]{
			ID:         name,
			Transport:  m.tr,
			Membership: m.ml,
			Codec:      pbCodec,
			Compressor: zc,
			Observer:   observer,
			OnDeliver: func(d gossip.Delivery[string, *structpb.Struct]) {
				mu.Lock()
				defer mu.Unlock()
				fmt.Fprintf(out, "%s delivered from %s, %d hop(s): %s\n", name, d.Origin, d.Hops, compact(d.Value))
				delivered[name] = d.Value
				if len(delivered) == n-1 {
					close(all)
				}
			},
		})
		if err != nil {
			return nil, err
		}
	}

	// A node that learns of a member after the broadcast is told of recent
	// messages and fetches them, so there is no need to wait for memberlist
	// to converge first.
	if _, err := members[0].node.Broadcast(ctx, msg); err != nil {
		return nil, err
	}
	fmt.Fprintf(out, "%s broadcast: %s\n", members[0].name, compact(msg))
	select {
	case <-all:
	case <-ctx.Done():
		return nil, errors.Join(errors.New("not every node delivered the message"), ctx.Err())
	}
	res := &result{Encoded: proto.Size(msg), FrameBytes: int(frameBytes.Load())}
	mu.Lock()
	res.Delivered = delivered
	mu.Unlock()
	fmt.Fprintf(out, "%d bytes of protobuf went as Gossip frames of %d bytes (zstd)\n", res.Encoded, res.FrameBytes)
	return res, nil
}

// compact renders a message as JSON on one line.
func compact(m proto.Message) string {
	b, err := protojson.Marshal(m)
	if err != nil {
		return err.Error()
	}
	return string(b)
}

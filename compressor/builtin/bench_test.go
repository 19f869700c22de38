package builtin_test

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/klauspost/compress/s2"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/descriptorpb"
	"google.golang.org/protobuf/types/dynamicpb"

	"github.com/plumtree-go/plumtree/compressor"
	"github.com/plumtree-go/plumtree/compressor/builtin"
)

// The payloads match the tuning guide's table: JSON documents, protobuf
// messages and random bytes, each generated deterministically from a seed
// and cut to size.
var (
	benchSizes = []int{1 << 10, 16 << 10, 256 << 10}
	benchKinds = []struct {
		name string
		gen  func(seed uint64, size int) []byte
	}{
		{"json", jsonPayload},
		{"protobuf", protobufPayload},
		{"random", randomPayload},
	}
)

var (
	services = []string{"billing", "search", "gateway", "auth", "inventory", "checkout", "profile"}
	regions  = []string{"eu-west-1", "eu-central-1", "us-east-1", "us-west-2", "ap-south-1"}
	verbs    = []string{"handled", "retried", "rejected", "cached", "forwarded"}
)

// jsonPayload is an array of log-like events, as encoding/json writes them.
func jsonPayload(seed uint64, size int) []byte {
	rng := rand.New(rand.NewPCG(seed, 1))
	type event struct {
		ID        uint64            `json:"id"`
		Timestamp string            `json:"timestamp"`
		Service   string            `json:"service"`
		Level     string            `json:"level"`
		Message   string            `json:"message"`
		LatencyMs float64           `json:"latency_ms"`
		TraceID   string            `json:"trace_id"`
		Labels    map[string]string `json:"labels"`
	}
	var evs []event
	var b []byte
	for len(b) < size {
		for range 8 {
			evs = append(evs, event{
				ID:        rng.Uint64() >> 20,
				Timestamp: fmt.Sprintf("2026-11-27T%02d:%02d:%02d.%03dZ", rng.IntN(24), rng.IntN(60), rng.IntN(60), rng.IntN(1000)),
				Service:   services[rng.IntN(len(services))],
				Level:     []string{"info", "info", "info", "warn", "error"}[rng.IntN(5)],
				Message:   fmt.Sprintf("request %d %s for user %d", rng.IntN(1_000_000), verbs[rng.IntN(len(verbs))], rng.IntN(50_000)),
				LatencyMs: float64(rng.IntN(500_000)) / 1000,
				TraceID:   fmt.Sprintf("%016x%016x", rng.Uint64(), rng.Uint64()),
				Labels:    map[string]string{"region": regions[rng.IntN(len(regions))], "version": fmt.Sprintf("v1.%d.%d", rng.IntN(20), rng.IntN(10))},
			})
		}
		b, _ = json.Marshal(evs)
	}
	return b[:size]
}

// eventBatch is the descriptor of a typical typed record batch:
//
//	message Event { uint64 id = 1; fixed64 timestamp_ns = 2; string service = 3;
//	  int32 level = 4; string message = 5; double latency_ms = 6;
//	  bytes trace_id = 7; string region = 8; }
//	message Batch { repeated Event events = 1; }
var eventBatch = func() protoreflect.MessageDescriptor {
	field := func(name string, n int32, typ descriptorpb.FieldDescriptorProto_Type, label descriptorpb.FieldDescriptorProto_Label, typeName string) *descriptorpb.FieldDescriptorProto {
		f := &descriptorpb.FieldDescriptorProto{Name: proto.String(name), Number: proto.Int32(n), Type: typ.Enum(), Label: label.Enum(), JsonName: proto.String(name)}
		if typeName != "" {
			f.TypeName = proto.String(typeName)
		}
		return f
	}
	opt := descriptorpb.FieldDescriptorProto_LABEL_OPTIONAL
	fd := &descriptorpb.FileDescriptorProto{
		Name: proto.String("bench.proto"), Package: proto.String("bench"), Syntax: proto.String("proto3"),
		MessageType: []*descriptorpb.DescriptorProto{
			{Name: proto.String("Event"), Field: []*descriptorpb.FieldDescriptorProto{
				field("id", 1, descriptorpb.FieldDescriptorProto_TYPE_UINT64, opt, ""),
				field("timestamp_ns", 2, descriptorpb.FieldDescriptorProto_TYPE_FIXED64, opt, ""),
				field("service", 3, descriptorpb.FieldDescriptorProto_TYPE_STRING, opt, ""),
				field("level", 4, descriptorpb.FieldDescriptorProto_TYPE_INT32, opt, ""),
				field("message", 5, descriptorpb.FieldDescriptorProto_TYPE_STRING, opt, ""),
				field("latency_ms", 6, descriptorpb.FieldDescriptorProto_TYPE_DOUBLE, opt, ""),
				field("trace_id", 7, descriptorpb.FieldDescriptorProto_TYPE_BYTES, opt, ""),
				field("region", 8, descriptorpb.FieldDescriptorProto_TYPE_STRING, opt, ""),
			}},
			{Name: proto.String("Batch"), Field: []*descriptorpb.FieldDescriptorProto{
				field("events", 1, descriptorpb.FieldDescriptorProto_TYPE_MESSAGE, descriptorpb.FieldDescriptorProto_LABEL_REPEATED, ".bench.Event"),
			}},
		},
	}
	f, err := protodesc.NewFile(fd, nil)
	if err != nil {
		panic(err)
	}
	return f.Messages().ByName("Batch")
}()

// protobufPayload is a marshalled Batch of the same events as jsonPayload
// would hold, in typed fields.
func protobufPayload(seed uint64, size int) []byte {
	rng := rand.New(rand.NewPCG(seed, 2))
	ed := eventBatch.Fields().ByName("events").Message()
	fields := ed.Fields()
	batch := dynamicpb.NewMessage(eventBatch)
	list := batch.Mutable(eventBatch.Fields().ByName("events")).List()
	var b []byte
	for len(b) < size {
		for range 8 {
			e := dynamicpb.NewMessage(ed)
			trace := make([]byte, 16)
			for i := range trace {
				trace[i] = byte(rng.Uint32())
			}
			e.Set(fields.ByName("id"), protoreflect.ValueOfUint64(rng.Uint64()>>20))
			e.Set(fields.ByName("timestamp_ns"), protoreflect.ValueOfUint64(1_795_000_000_000_000_000+rng.Uint64N(86_400_000_000_000)))
			e.Set(fields.ByName("service"), protoreflect.ValueOfString(services[rng.IntN(len(services))]))
			e.Set(fields.ByName("level"), protoreflect.ValueOfInt32(int32(rng.IntN(4))))
			e.Set(fields.ByName("message"), protoreflect.ValueOfString(fmt.Sprintf("request %d %s for user %d", rng.IntN(1_000_000), verbs[rng.IntN(len(verbs))], rng.IntN(50_000))))
			e.Set(fields.ByName("latency_ms"), protoreflect.ValueOfFloat64(float64(rng.IntN(500_000))/1000))
			e.Set(fields.ByName("trace_id"), protoreflect.ValueOfBytes(trace))
			e.Set(fields.ByName("region"), protoreflect.ValueOfString(regions[rng.IntN(len(regions))]))
			list.Append(protoreflect.ValueOfMessage(e))
		}
		var err error
		if b, err = proto.Marshal(batch); err != nil {
			panic(err)
		}
	}
	return b[:size]
}

func randomPayload(seed uint64, size int) []byte {
	rng := rand.New(rand.NewPCG(seed, 3))
	b := make([]byte, size)
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
	return b
}

// s2Block is klauspost's S2 block format, benchmarked to see whether it
// earns a place; it is not a shipped compressor (its ID is a placeholder).
type s2Block struct{ better bool }

func (s s2Block) ID() byte { return 250 }
func (s s2Block) Name() string {
	if s.better {
		return "s2-better"
	}
	return "s2"
}
func (s s2Block) Compress(dst, src []byte) ([]byte, error) {
	var out []byte
	if s.better {
		out = s2.EncodeBetter(dst[len(dst):cap(dst)], src)
	} else {
		out = s2.Encode(dst[len(dst):cap(dst)], src)
	}
	return append(dst, out...), nil
}
func (s s2Block) Decompress(dst, src []byte, maxSize int) ([]byte, error) {
	n, err := s2.DecodedLen(src)
	if err != nil || n > maxSize {
		return dst, compressor.ErrTooLarge
	}
	out, err := s2.Decode(dst[len(dst):cap(dst)], src)
	if err != nil {
		return dst, err
	}
	return append(dst, out...), nil
}

type benchComp struct {
	name string
	c    compressor.Compressor
}

func benchCompressors(b *testing.B) []benchComp {
	var cs []benchComp
	for _, l := range []int{1, 3, 7, 11} {
		c, err := builtin.New("zstd", l)
		if err != nil {
			b.Fatal(err)
		}
		cs = append(cs, benchComp{fmt.Sprintf("zstd-%d", l), c})
	}
	for _, l := range []int{0, 9} {
		c, err := builtin.New("lz4", l)
		if err != nil {
			b.Fatal(err)
		}
		cs = append(cs, benchComp{fmt.Sprintf("lz4-%d", l), c})
	}
	return append(cs, benchComp{"s2", s2Block{}}, benchComp{"s2-better", s2Block{better: true}})
}

// BenchmarkCompressors reports, for each compressor, level, payload kind and
// size: the ratio (original over compressed size), MB/s of the original
// size for compress and decompress, and allocations per operation (into a
// reused buffer, as the node's receive path does).
//
//	go test -run='^$' -bench=Compressors -benchtime=200ms -count=3 ./compressor/builtin
func BenchmarkCompressors(b *testing.B) {
	comps := benchCompressors(b)
	for _, kind := range benchKinds {
		for _, size := range benchSizes {
			payload := kind.gen(42, size)
			for _, bc := range comps {
				var z []byte
				var err error
				// Warm up every pooled encoder, so that no lazy set-up is
				// counted in the loop.
				for range 8 {
					if z, err = bc.c.Compress(z[:0], payload); err != nil {
						b.Fatal(err)
					}
				}
				ratio := float64(len(payload)) / float64(len(z))
				name := fmt.Sprintf("%s/%dKiB/%s", kind.name, size>>10, bc.name)
				b.Run(name+"/compress", func(b *testing.B) {
					b.SetBytes(int64(len(payload)))
					b.ReportAllocs()
					buf := make([]byte, 0, len(z)+1024)
					for b.Loop() {
						if buf, err = bc.c.Compress(buf[:0], payload); err != nil {
							b.Fatal(err)
						}
					}
					b.ReportMetric(ratio, "ratio")
				})
				b.Run(name+"/decompress", func(b *testing.B) {
					b.SetBytes(int64(len(payload)))
					b.ReportAllocs()
					buf := make([]byte, 0, len(payload))
					for b.Loop() {
						if buf, err = bc.c.Decompress(buf[:0], z, len(payload)); err != nil {
							b.Fatal(err)
						}
					}
					b.ReportMetric(ratio, "ratio")
				})
			}
		}
	}
}

package main

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/plumtree-go/plumtree/gossip"
	"github.com/plumtree-go/plumtree/internal/promtext"
	"github.com/plumtree-go/plumtree/stack"
)

// subscriberBuffer is how many deliveries wait for one subscriber; past it
// the subscriber misses deliveries (counted, and told in its stream), and
// the node never waits for it.
const subscriberBuffer = 1024

// httpAPI is `plumtree node -http`: publish, subscribe, members, peers,
// health and metrics of one node.
//
// Topics are not here yet: every route serves the node's one broadcast
// stream, and a topic parameter is refused (400) rather than ignored, so
// that adding topics later changes no route's meaning.
type httpAPI struct {
	metrics *promtext.Provider
	mu      sync.Mutex
	subs    map[*subscriber]struct{}
}

type subscriber struct {
	ch      chan gossip.Delivery[string, []byte]
	dropped atomic.Uint64
}

// event is one delivery as the subscription stream carries it.
type event struct {
	ID     string `json:"id"`
	Origin string `json:"origin"`
	Hops   uint32 `json:"hops"`
	Text   string `json:"text,omitempty"` // the payload, when it is UTF-8
	Data   []byte `json:"data"`           // the payload (base64 in JSON)
	// Dropped counts this subscriber's deliveries lost to a full buffer
	// since the previous event.
	Dropped uint64 `json:"dropped,omitempty"`
}

func newHTTPAPI(metrics *promtext.Provider) *httpAPI {
	return &httpAPI{metrics: metrics, subs: map[*subscriber]struct{}{}}
}

// deliver hands d to every subscriber without waiting.
func (a *httpAPI) deliver(d gossip.Delivery[string, []byte]) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for s := range a.subs {
		select {
		case s.ch <- d:
		default:
			s.dropped.Add(1)
		}
	}
}

// httpListenAddr is where -http binds: an address without a host binds
// loopback, anything else as given.
func httpListenAddr(addr string) (string, error) {
	if !strings.Contains(addr, ":") {
		addr = ":" + addr // a bare port
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", fmt.Errorf("-http %q: %w", addr, err)
	}
	if host == "" {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port), nil
}

// serve starts the API at addr; it stops when ctx ends, and wg waits for
// it. It returns the address it listens on.
func (a *httpAPI) serve(ctx context.Context, wg *sync.WaitGroup, addr string, s *stack.Stack) (string, error) {
	addr, err := httpListenAddr(addr)
	if err != nil {
		return "", err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return "", fmt.Errorf("-http: %w", err)
	}
	srv := &http.Server{Handler: a.handler(s), ReadHeaderTimeout: 10 * time.Second,
		BaseContext: func(net.Listener) context.Context { return ctx }}
	wg.Go(func() { _ = srv.Serve(ln) })
	wg.Go(func() {
		<-ctx.Done()
		shut, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		if srv.Shutdown(shut) != nil {
			srv.Close()
		}
	})
	return ln.Addr().String(), nil
}

func (a *httpAPI) handler(s *stack.Stack) http.Handler {
	mux := http.NewServeMux()
	noTopic := func(w http.ResponseWriter, r *http.Request) bool {
		if r.URL.Query().Get("topic") != "" {
			http.Error(w, "topics are not available yet: this node has one broadcast stream; leave topic out", http.StatusBadRequest)
			return false
		}
		return true
	}
	mux.HandleFunc("POST /publish", func(w http.ResponseWriter, r *http.Request) {
		if !noTopic(w, r) {
			return
		}
		limit := int64(s.Gossip.MaxMessageSize)
		body, err := io.ReadAll(io.LimitReader(r.Body, limit+1))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		if int64(len(body)) > limit {
			http.Error(w, fmt.Sprintf("message over %d bytes (MaxMessageSize)", limit), http.StatusRequestEntityTooLarge)
			return
		}
		id, err := s.Node.Broadcast(r.Context(), body)
		if err != nil {
			code := http.StatusInternalServerError
			if errors.Is(err, gossip.ErrClosed) {
				code = http.StatusServiceUnavailable
			}
			http.Error(w, err.Error(), code)
			return
		}
		writeJSON(w, map[string]string{"id": hex.EncodeToString(id[:])})
	})
	mux.HandleFunc("GET /subscribe", func(w http.ResponseWriter, r *http.Request) {
		if !noTopic(w, r) {
			return
		}
		sse := strings.Contains(r.Header.Get("Accept"), "text/event-stream")
		flusher, _ := w.(http.Flusher)
		sub := &subscriber{ch: make(chan gossip.Delivery[string, []byte], subscriberBuffer)}
		a.mu.Lock()
		a.subs[sub] = struct{}{}
		a.mu.Unlock()
		defer func() {
			a.mu.Lock()
			delete(a.subs, sub)
			a.mu.Unlock()
		}()
		if sse {
			w.Header().Set("Content-Type", "text/event-stream")
		} else {
			w.Header().Set("Content-Type", "application/x-ndjson")
		}
		w.Header().Set("Cache-Control", "no-store")
		w.WriteHeader(http.StatusOK)
		if flusher != nil {
			flusher.Flush()
		}
		for {
			select {
			case <-r.Context().Done():
				return
			case d := <-sub.ch:
				e := event{ID: hex.EncodeToString(d.ID[:]), Origin: d.Origin, Hops: d.Hops, Data: d.Value, Dropped: sub.dropped.Swap(0)}
				if utf8.Valid(d.Value) {
					e.Text = string(d.Value)
				}
				b, _ := json.Marshal(e)
				if sse {
					_, err := fmt.Fprintf(w, "data: %s\n\n", b)
					if err != nil {
						return
					}
				} else if _, err := w.Write(append(b, '\n')); err != nil {
					return
				}
				if flusher != nil {
					flusher.Flush()
				}
			}
		}
	})
	mux.HandleFunc("GET /members", func(w http.ResponseWriter, r *http.Request) {
		type member struct {
			ID   string `json:"id"`
			Addr string `json:"addr"`
		}
		list := []member{}
		for _, m := range s.Membership.Members() {
			list = append(list, member{m.ID, m.Addr})
		}
		writeJSON(w, list)
	})
	mux.HandleFunc("GET /peers", func(w http.ResponseWriter, r *http.Request) {
		eager, lazy, err := s.Node.Peers()
		if err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		if eager == nil {
			eager = []string{}
		}
		if lazy == nil {
			lazy = []string{}
		}
		writeJSON(w, map[string][]string{"eager": eager, "lazy": lazy})
	})
	mux.HandleFunc("GET /health", func(w http.ResponseWriter, r *http.Request) {
		st, err := s.Node.Stats()
		if err != nil {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusServiceUnavailable)
			writeJSON(w, map[string]any{"status": "stopped", "id": s.ID(), "error": err.Error()})
			return
		}
		writeJSON(w, map[string]any{"status": "ok", "id": s.ID(), "members": len(s.Membership.Members()),
			"eager": st.Eager, "lazy": st.Lazy})
	})
	mux.HandleFunc("GET /metrics", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
		if err := a.metrics.WriteText(r.Context(), w); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
		}
	})
	return mux
}

func writeJSON(w http.ResponseWriter, v any) {
	if w.Header().Get("Content-Type") == "" {
		w.Header().Set("Content-Type", "application/json")
	}
	_ = json.NewEncoder(w).Encode(v)
}

//go:build e2e

package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"runtime"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// httpPort is the HTTP API port of the nodes driven through it.
const httpPort = 8080

// viaHTTP reports whether node i is driven through its HTTP API (every
// third node, starting with n1) instead of its standard input and output:
// its broadcasts are POSTed to /publish and its deliveries read from
// /subscribe.
func viaHTTP(i int) bool { return i%3 == 1 }

// httpAddr is node i's HTTP API address, on its own IP: given explicitly,
// since the node binds loopback otherwise.
func httpAddr(i int) string { return fmt.Sprintf("%s:%d", nodeIP(i), httpPort) }

// dialInNetns dials addr from inside the network namespace ns: the test
// runs in the root namespace, which has no route to the nodes' network. A
// socket stays in the namespace it was created in, so the goroutine that
// creates it enters ns on a thread of its own and leaves it after; if it
// cannot leave, it returns without unlocking, and the runtime ends that
// thread.
func dialInNetns(ctx context.Context, ns, addr string) (net.Conn, error) {
	type result struct {
		conn net.Conn
		err  error
	}
	ch := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		self, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			runtime.UnlockOSThread()
			ch <- result{nil, err}
			return
		}
		defer self.Close()
		target, err := os.Open("/run/netns/" + ns)
		if err != nil {
			runtime.UnlockOSThread()
			ch <- result{nil, err}
			return
		}
		defer target.Close()
		if err := setns(target); err != nil {
			runtime.UnlockOSThread()
			ch <- result{nil, fmt.Errorf("setns %s: %w", ns, err)}
			return
		}
		conn, err := (&net.Dialer{}).DialContext(ctx, "tcp", addr)
		if setns(self) != nil {
			ch <- result{conn, err} // the thread stays locked and dies with this goroutine
			return
		}
		runtime.UnlockOSThread()
		ch <- result{conn, err}
	}()
	r := <-ch
	return r.conn, r.err
}

func setns(f *os.File) error { return unix.Setns(int(f.Fd()), unix.CLONE_NEWNET) }

// httpClient returns a client whose connections to node i's API are made
// inside its namespace.
func (c *cluster) httpClient(i int) *http.Client {
	ns := c.nw.nodes[i]
	return &http.Client{Transport: &http.Transport{
		DisableKeepAlives: true, // nothing left open after the test
		DialContext: func(ctx context.Context, _, addr string) (net.Conn, error) {
			return dialInNetns(ctx, ns, addr)
		},
	}}
}

// publish broadcasts msg through node i's HTTP API.
func (c *cluster) publish(i int, msg string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, "POST", "http://"+httpAddr(i)+"/publish", strings.NewReader(msg))
	if err != nil {
		return err
	}
	resp, err := c.httpClient(i).Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("POST /publish: %s %s", resp.Status, body)
	}
	return nil
}

// subscribe reads process k's deliveries from its /subscribe stream until
// the process ends, and records each as readDeliveries records a printed
// one. It marks k subscribed once the stream is open.
func (c *cluster) subscribe(k procKey, done <-chan struct{}) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { // the process's end ends the stream
		<-done
		cancel()
	}()
	req, err := http.NewRequestWithContext(ctx, "GET", "http://"+httpAddr(k.node)+"/subscribe", nil)
	if err != nil {
		c.subscribeFailed(k, err)
		return
	}
	resp, err := c.httpClient(k.node).Do(req)
	if err != nil {
		c.subscribeFailed(k, err)
		return
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		c.subscribeFailed(k, fmt.Errorf("GET /subscribe: %s", resp.Status))
		return
	}
	c.mu.Lock()
	c.subscribed[k] = true
	c.notify()
	c.mu.Unlock()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		var e struct {
			Text    string `json:"text"`
			Hops    int    `json:"hops"`
			Dropped uint64 `json:"dropped"`
		}
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			c.subscribeFailed(k, fmt.Errorf("a line of /subscribe: %v: %q", err, sc.Text()))
			return
		}
		if e.Dropped > 0 {
			c.subscribeFailed(k, fmt.Errorf("/subscribe dropped %d deliveries", e.Dropped))
		}
		c.recordDelivery(k, e.Text, e.Hops)
	}
}

// subscribeFailed reports a subscription that could not be read, unless
// the process is gone anyway.
func (c *cluster) subscribeFailed(k procKey, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if p := c.procs[k.node]; p != nil && p.key == k && !p.killed {
		c.crashed = append(c.crashed, fmt.Sprintf("%s (process %d): %v", name(k.node), k.gen, err))
		c.notify()
	}
}

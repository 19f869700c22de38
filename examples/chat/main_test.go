package main

import (
	"bufio"
	"context"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/plumtree-go/plumtree/internal/leakcheck"
)

// TestMain checks that no goroutine outlives the tests, with time for
// memberlist's own to end (see package leakcheck).
func TestMain(m *testing.M) { leakcheck.Main(m) }

// watchdog only breaks a hang; a run takes a second or two.
const watchdog = 30 * time.Second

// terminal is one chat node run in the test: its input, and the lines it
// printed.
type terminal struct {
	t     *testing.T
	name  string
	in    *io.PipeWriter
	lines chan string
	done  chan error
	seen  []string
}

// start runs a chat node named name that joins join.
func start(t *testing.T, name string, join ...string) *terminal {
	inR, inW := io.Pipe()
	outR, outW := io.Pipe()
	term := &terminal{t: t, name: name, in: inW, lines: make(chan string, 1000), done: make(chan error, 1)}
	go func() {
		defer close(term.lines)
		sc := bufio.NewScanner(outR)
		for sc.Scan() {
			term.lines <- sc.Text()
		}
	}()
	go func() {
		cfg := config{Name: name, Listen: "127.0.0.1:0", Join: join, Secret: "test"}
		err := run(context.Background(), cfg, inR, outW)
		outW.Close()
		term.done <- err
	}()
	return term
}

// expect returns the first line printed with the given prefix, reading
// more lines until one comes.
func (term *terminal) expect(prefix string) string {
	term.t.Helper()
	for _, line := range term.seen {
		if strings.HasPrefix(line, prefix) {
			return line
		}
	}
	timeout := time.After(watchdog)
	for {
		select {
		case line, ok := <-term.lines:
			if !ok {
				term.t.Fatalf("%s stopped before printing %q; printed %q; run: %v", term.name, prefix, term.seen, <-term.done)
			}
			term.seen = append(term.seen, line)
			if strings.HasPrefix(line, prefix) {
				return line
			}
		case <-timeout:
			term.t.Fatalf("%s printed no %q within %v; printed %q", term.name, prefix, watchdog, term.seen)
		}
	}
}

// say types a line.
func (term *terminal) say(line string) {
	term.t.Helper()
	if _, err := io.WriteString(term.in, line+"\n"); err != nil {
		term.t.Fatal(err)
	}
}

// quit ends the input, waits for run to return and checks what else it
// printed.
func (term *terminal) quit() []string {
	term.t.Helper()
	term.in.Close()
	for line := range term.lines {
		term.seen = append(term.seen, line)
	}
	if err := <-term.done; err != nil {
		term.t.Errorf("%s: run: %v", term.name, err)
	}
	return term.seen
}

// addr is the address the node said others join it at.
func (term *terminal) addr() string {
	term.t.Helper()
	line := term.expect("* " + term.name + " in the room at ")
	f := strings.Fields(line)
	return f[len(f)-1][:len(f[len(f)-1])-1] // the last word, without ")"
}

// TestChat runs three chat nodes on loopback, types a line into one and
// sees it printed once by each of the other two.
func TestChat(t *testing.T) {
	alice := start(t, "alice")
	seed := alice.addr()
	bob := start(t, "bob", seed)
	carol := start(t, "carol", seed)
	// Everyone knows everyone before anyone speaks. (Not required: a node
	// that joins later is told the recent messages. It keeps this test
	// about the chat.)
	alice.expect("* bob joined")
	alice.expect("* carol joined")
	bob.expect("* carol joined")
	carol.expect("* bob joined")

	alice.say("hello, room")
	bob.expect("alice: hello, room")
	carol.expect("alice: hello, room")
	carol.say("hi alice")
	alice.expect("carol: hi alice")
	bob.expect("carol: hi alice")

	// Leave one at a time, so that each goodbye is acknowledged by nodes
	// still running.
	for _, term := range []*terminal{carol, bob, alice} {
		seen := term.quit()
		for _, line := range seen {
			if strings.HasPrefix(line, term.name+": ") {
				t.Errorf("%s printed its own message: %q", term.name, line)
			}
		}
		if n := count(seen, "alice: hello, room"); term != alice && n != 1 {
			t.Errorf("%s printed alice's message %d times; printed %q", term.name, n, seen)
		}
	}
}

func count(lines []string, s string) int {
	n := 0
	for _, l := range lines {
		if l == s {
			n++
		}
	}
	return n
}

package layering

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

const module = "github.com/plumtree-go/plumtree"

// layer is where a package sits.
type layer int

const (
	core    layer = iota + 1 // the protocol: gossip and its internals
	port                     // the small interfaces the core talks to
	adapter                  // an implementation of a port (or of the core's Observer hook)
	support                  // adapters' shared internals (transport/internal/...)
	above                    // built on the core and adapters: stack, conformance, shared helpers
	tool                     // programs and harnesses the library never imports
)

func (l layer) String() string {
	return [...]string{"unplaced", "core", "port", "adapter", "adapter support", "above the core", "tool"}[l]
}

// layers places every package of the module, by path relative to the
// module. A prefix ending in "/" places everything under it.
var layers = map[string]layer{
	"gossip":           core,
	"gossip/internal/": core,

	"transport":  port,
	"codec":      port,
	"compressor": port,
	"membership": port,
	"clock":      port, // time, for the runner, chaos and seal

	"transport/mem":         adapter,
	"transport/udp":         adapter,
	"transport/tcp":         adapter,
	"transport/quic":        adapter,
	"transport/udptcp":      adapter,
	"transport/chaos":       adapter,
	"transport/seal":        adapter,
	"transport/devcert":     adapter, // certificates for tests and demos, used beside a TLS transport
	"codec/protobuf":        adapter,
	"compressor/lz4":        adapter,
	"compressor/zstd":       adapter,
	"compressor/builtin":    adapter,
	"membership/static":     adapter,
	"membership/memberlist": adapter,
	"observe":               adapter, // the core's Observer hook, on OpenTelemetry

	"transport/internal/": support,

	"stack":              above,
	"topic":              above, // many topics over one transport and membership
	"conformance":        above,
	"internal/cli":       above,
	"internal/promtext":  above,
	"internal/leakcheck": above,
	"internal/watchdog":  above,
	"internal/layering":  above,

	"cmd/":             tool,
	"sim":              tool,
	"internal/bench":   tool,
	"internal/figures": tool,
	"e2e":              tool,
	"examples/":        tool,
	"bench/":           tool,
}

// adapterMayImport lists the adapters that exist to combine or wrap
// others: the only imports of one adapter by another.
var adapterMayImport = map[string][]string{
	"transport/udptcp":   {"transport/udp", "transport/tcp"}, // the two paths on one port
	"compressor/builtin": {"compressor/lz4", "compressor/zstd"},
}

// knownExceptions are imports that break a rule today, each with the work
// that removes it. An exception that no longer occurs fails the test, so
// the list shrinks with the code.
var knownExceptions = map[[2]string]string{}

// pkg is what the test reads of `go list -json`.
type pkg struct {
	ImportPath string
	Dir        string
	GoFiles    []string
	Imports    []string
	Deps       []string
}

// rel strips the module prefix; ok is false for packages of other modules
// and the standard library.
func rel(path string) (string, bool) {
	if path == module {
		return "", true
	}
	r, ok := strings.CutPrefix(path, module+"/")
	return r, ok
}

func layerOf(p string) layer {
	if l, ok := layers[p]; ok {
		return l
	}
	best, bestLen := layer(0), -1
	for prefix, l := range layers {
		if strings.HasSuffix(prefix, "/") && strings.HasPrefix(p, prefix) && len(prefix) > bestLen {
			best, bestLen = l, len(prefix)
		}
	}
	return best
}

// listModule runs `go list -json` over the module's packages (their
// non-test files: tests may use any adapter).
func listModule(t *testing.T) []pkg {
	t.Helper()
	cmd := exec.Command("go", "list", "-json", module+"/...")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, stderr.Bytes())
	}
	var pkgs []pkg
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		var p pkg
		if err := dec.Decode(&p); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatalf("go list output: %v", err)
		}
		pkgs = append(pkgs, p)
	}
	if len(pkgs) < 10 {
		t.Fatalf("go list found %d packages of %s; run the test inside the module", len(pkgs), module)
	}
	touchSources(t, pkgs)
	return pkgs
}

// touchSources reads the packages' directories and source files. go test
// caches a result by the files the test opens, not by what a subprocess
// reads: without this, a new import would pass on a cached result.
func touchSources(t *testing.T, pkgs []pkg) {
	t.Helper()
	for _, p := range pkgs {
		if _, err := os.ReadDir(p.Dir); err != nil {
			t.Fatalf("%s: %v", p.ImportPath, err)
		}
		for _, f := range p.GoFiles {
			if _, err := os.ReadFile(filepath.Join(p.Dir, f)); err != nil {
				t.Fatalf("%s: %v", p.ImportPath, err)
			}
		}
	}
}

// violation is one import that breaks a rule, or "" if it breaks none.
func violation(from, to string) string {
	lf, lt := layerOf(from), layerOf(to)
	switch {
	case lt == tool && lf != tool:
		return "the library imports a tool (cmd, sim, internal/bench, examples, bench and e2e are built on the library, never under it)"
	case lf == core && lt != core && lt != port:
		return "the core imports " + lt.String() + " " + to + ": it may import only the ports and its own internals"
	case lf == port && lt != port:
		return "a port imports " + lt.String() + " " + to + ": ports import nothing of the module"
	case lf == port && lt == port:
		return "a port imports another port: ports import nothing of the module"
	case lf == adapter && lt == adapter && !slices.Contains(adapterMayImport[from], to):
		return "an adapter imports another adapter; only the bundles and decorators listed in adapterMayImport may"
	case (lf == adapter || lf == support) && lt == above:
		return "an adapter imports " + to + ", which is built above the adapters"
	case lf == support && lt == adapter:
		return "adapter support imports an adapter"
	case (lf == core || lf == port) && lt == support:
		return "the core or a port imports adapter support"
	}
	return ""
}

// TestLayering holds the import rules of the package doc on every
// package's direct imports, and on the core's whole dependency graph.
func TestLayering(t *testing.T) {
	pkgs := listModule(t)
	seen := make(map[[2]string]bool)
	check := func(from, to, via string) {
		edge := [2]string{from, to}
		if why := violation(from, to); why != "" {
			if _, known := knownExceptions[edge]; known {
				seen[edge] = true
				return
			}
			t.Errorf("%s imports %s%s: %s", from, to, via, why)
		}
	}
	for _, p := range pkgs {
		from, _ := rel(p.ImportPath)
		if layerOf(from) == 0 {
			t.Errorf("package %s has no layer: place it in layering_test.go's table (and docs/ARCHITECTURE.md)", p.ImportPath)
			continue
		}
		for _, imp := range p.Imports {
			if to, ok := rel(imp); ok {
				if layerOf(to) == 0 {
					continue // reported as its own package
				}
				check(from, to, "")
			}
		}
	}
	for edge, why := range knownExceptions {
		if !seen[edge] {
			t.Errorf("known exception %s -> %s (%s) no longer occurs: remove it from knownExceptions", edge[0], edge[1], why)
		}
	}
}

// TestCoreDeps checks what `go list -deps ./gossip` holds: the standard
// library, xxhash, the ports and the core's own internals, and nothing the
// known exceptions do not account for.
func TestCoreDeps(t *testing.T) {
	var g pkg
	for _, p := range listModule(t) {
		if p.ImportPath == module+"/gossip" {
			g = p
		}
	}
	if g.ImportPath == "" {
		t.Fatal("go list did not list the gossip package")
	}
	// What the known exceptions of the core bring with them.
	excused := map[string]bool{}
	for edge := range knownExceptions {
		if edge[0] == "gossip" {
			excused[edge[1]] = true
			for _, d := range depsOf(t, module+"/"+edge[1]) {
				excused[d] = true
				if r, ok := rel(d); ok {
					excused[r] = true
				}
			}
		}
	}
	for _, d := range g.Deps {
		if r, ok := rel(d); ok {
			if l := layerOf(r); l != core && l != port && !excused[r] {
				t.Errorf("the core depends on %s (%s)", d, l)
			}
			continue
		}
		if !strings.Contains(strings.Split(d, "/")[0], ".") {
			continue // the standard library
		}
		if d != "github.com/cespare/xxhash/v2" && !excused[d] {
			t.Errorf("the core depends on the third-party package %s", d)
		}
	}
}

// depsOf lists a package's dependencies.
func depsOf(t *testing.T, path string) []string {
	t.Helper()
	out, err := exec.Command("go", "list", "-f", `{{join .Deps "\n"}}`, path).Output()
	if err != nil {
		t.Fatalf("go list %s: %v", path, err)
	}
	return strings.Fields(string(out))
}

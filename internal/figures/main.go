// Command figures checks that the figures the README and the docs quote
// from deterministic commands (the simulator, exact counts of virtual-time
// tests) are what those commands print today, and with -update rewrites
// them, and the files the commands write (docs/sim/*.csv and the plots),
// from a fresh run.
//
//	go run ./internal/figures            # check; exit 1 on any difference
//	go run ./internal/figures -update    # rewrite the figures and docs/sim/
//
// A document names each command once, in an HTML comment (invisible on
// GitHub), and wraps each figure it quotes from that command's output:
//
//	<!-- fig-cmd sim1k: plumtree sim -nodes 1000 -broadcasts 30 -warmup 10 -seed 1 -->
//	... plus <!-- fig sim1k ~ plumtree .*control (\d+) per broadcast ~ , -->2,122<!-- /fig --> small frames
//
// A figure's spec is the command's name, a regular expression matched
// against the command's standard output (its first group is the figure),
// and optionally a format: a fmt verb for a number (%.0f, %.2f) and, with a
// leading comma, thousands separators (",", ",%.0f"). A command starts
// with plumtree (this repository's cmd/plumtree, built once) or go (for
// go test -v of a virtual-time test). A plumtree command's -csv file and
// -plot directory are written to a temporary directory and compared with
// the repository's copies, or, with -update, written in place.
//
// Only deterministic figures belong here: the same command prints the same
// output on any machine. Figures from timing-dependent runs (wall-clock
// latencies, ns/op) say in the text when and how they were measured.
package main

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"
)

var (
	cmdRe = regexp.MustCompile(`<!-- fig-cmd (\w[\w.-]*): (.+?) -->`)
	figRe = regexp.MustCompile(`<!-- fig (.+?) -->(.*?)<!-- /fig -->`)
)

type command struct {
	name, line string // as written in the document
	file       string // where it is defined
	out        string // standard output, once run
	ran        bool
}

func main() {
	update := flag.Bool("update", false, "rewrite the figures in the documents and the files the commands write")
	flag.Usage = func() {
		fmt.Fprintln(os.Stderr, "usage: go run ./internal/figures [-update] [file.md ...] (default README.md docs/TUNING.md)")
		flag.PrintDefaults()
	}
	flag.Parse()
	files := flag.Args()
	if len(files) == 0 {
		files = []string{"README.md", "docs/TUNING.md"}
	}
	if err := run(files, *update); err != nil {
		fmt.Fprintln(os.Stderr, "figures:", err)
		os.Exit(1)
	}
}

func run(files []string, update bool) error {
	tmp, err := os.MkdirTemp("", "figures")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	bin := filepath.Join(tmp, "plumtree")
	if out, err := exec.Command("go", "build", "-o", bin, "./cmd/plumtree").CombinedOutput(); err != nil {
		return fmt.Errorf("go build ./cmd/plumtree: %v\n%s", err, out)
	}
	cmds := map[string]*command{}
	texts := map[string]string{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return err
		}
		texts[f] = string(b)
		for _, m := range cmdRe.FindAllStringSubmatch(string(b), -1) {
			if c, ok := cmds[m[1]]; ok && c.line != m[2] {
				return fmt.Errorf("%s: command %s defined twice (also in %s), differently", f, m[1], c.file)
			}
			cmds[m[1]] = &command{name: m[1], line: m[2], file: f}
		}
	}
	var problems []string
	for _, f := range files {
		text := texts[f]
		var fail error
		changed := false
		newText := figRe.ReplaceAllStringFunc(text, func(whole string) string {
			if fail != nil {
				return whole
			}
			m := figRe.FindStringSubmatch(whole)
			spec, quoted := m[1], m[2]
			line := 1 + strings.Count(text[:strings.Index(text, whole)], "\n")
			parts := strings.Split(spec, " ~ ")
			if len(parts) < 2 || len(parts) > 3 {
				fail = fmt.Errorf("%s:%d: figure spec %q: want NAME ~ REGEXP [~ FORMAT]", f, line, spec)
				return whole
			}
			c := cmds[strings.TrimSpace(parts[0])]
			if c == nil {
				fail = fmt.Errorf("%s:%d: no <!-- fig-cmd %s: ... --> in %v", f, line, parts[0], files)
				return whole
			}
			if !c.ran {
				if err := c.run(bin, tmp, update, &problems); err != nil {
					fail = err
					return whole
				}
			}
			re, err := regexp.Compile(parts[1])
			if err != nil {
				fail = fmt.Errorf("%s:%d: %v", f, line, err)
				return whole
			}
			g := re.FindStringSubmatch(c.out)
			if len(g) < 2 {
				fail = fmt.Errorf("%s:%d: %q matches nothing in the output of %s (`%s`):\n%s", f, line, parts[1], c.name, c.line, c.out)
				return whole
			}
			format := ""
			if len(parts) == 3 {
				format = strings.TrimSpace(parts[2])
			}
			got, err := render(g[1], format)
			if err != nil {
				fail = fmt.Errorf("%s:%d: %v", f, line, err)
				return whole
			}
			if got == quoted {
				return whole
			}
			problems = append(problems, fmt.Sprintf("%s:%d: the text says %s, `%s` (%s) gives %s", f, line, quoted, c.line, c.name, got))
			changed = true
			return strings.Replace(whole, "-->"+quoted+"<!--", "-->"+got+"<!--", 1)
		})
		if fail != nil {
			return fail
		}
		if update && changed {
			if err := os.WriteFile(f, []byte(newText), 0o644); err != nil {
				return err
			}
		}
	}
	n := 0
	for _, f := range files {
		n += len(figRe.FindAllString(texts[f], -1))
	}
	if len(problems) == 0 {
		fmt.Printf("figures: %d figures from %d commands agree with %v\n", n, len(cmds), files)
		return nil
	}
	for _, p := range problems {
		fmt.Println(p)
	}
	if update {
		fmt.Printf("figures: updated %d figures or files (commit them)\n", len(problems))
		return nil
	}
	return fmt.Errorf("%d of %d figures or files disagree with the commands; run `go run ./internal/figures -update` (or .ci/figures -update) and review the diff", len(problems), n)
}

// run runs the command once. Files it writes go to tmp, and are compared
// with the repository's (or, with update, written in place).
func (c *command) run(bin, tmp string, update bool, problems *[]string) error {
	args := strings.Fields(c.line)
	var outputs [][2]string // repository path, temporary path
	for i := 0; i+1 < len(args); i++ {
		if args[0] == "plumtree" && (args[i] == "-csv" || args[i] == "-plot") && args[i+1] != "-" {
			repo := args[i+1]
			t := filepath.Join(tmp, c.name+"-"+filepath.Base(repo))
			outputs = append(outputs, [2]string{repo, t})
			if !update {
				args[i+1] = t
			}
		}
	}
	switch args[0] {
	case "plumtree":
		args[0] = bin
	case "go":
	default:
		return fmt.Errorf("%s: command %s: only plumtree and go commands are run: %q", c.file, c.name, c.line)
	}
	start := time.Now()
	cmd := exec.Command(args[0], args[1:]...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s (`%s`): %v\n%s%s", c.name, c.line, err, stdout.String(), stderr.String())
	}
	fmt.Fprintf(os.Stderr, "figures: %s: `%s` (%v)\n", c.name, c.line, time.Since(start).Round(100*time.Millisecond))
	c.out, c.ran = stdout.String(), true
	if update {
		return nil
	}
	for _, o := range outputs {
		if d := compare(o[0], o[1]); d != "" {
			*problems = append(*problems, fmt.Sprintf("%s: %s (from `%s`)", o[0], d, c.line))
		}
	}
	return nil
}

// compare reports how repo (a file or a directory of files) differs from
// fresh, or "" if it does not.
func compare(repo, fresh string) string {
	fi, err := os.Stat(fresh)
	if err != nil {
		return fmt.Sprintf("the command did not write it: %v", err)
	}
	if !fi.IsDir() {
		a, err := os.ReadFile(repo)
		if err != nil {
			return err.Error()
		}
		b, _ := os.ReadFile(fresh)
		if !bytes.Equal(a, b) {
			return "differs from what the command writes now"
		}
		return ""
	}
	entries, err := os.ReadDir(fresh)
	if err != nil {
		return err.Error()
	}
	var diff []string
	for _, e := range entries {
		if d := compare(filepath.Join(repo, e.Name()), filepath.Join(fresh, e.Name())); d != "" {
			diff = append(diff, e.Name()+": "+d)
		}
	}
	return strings.Join(diff, "; ")
}

// render formats a captured figure: format is "" (as captured), a fmt verb
// for a float, and a leading comma for thousands separators.
func render(captured, format string) (string, error) {
	comma := strings.HasPrefix(format, ",")
	format = strings.TrimPrefix(format, ",")
	s := captured
	if format != "" {
		v, err := strconv.ParseFloat(captured, 64)
		if err != nil {
			return "", fmt.Errorf("format %q wants a number, got %q", format, captured)
		}
		s = fmt.Sprintf(format, v)
	}
	if comma {
		s = thousands(s)
	}
	return s, nil
}

func thousands(s string) string {
	intPart, frac, hasFrac := strings.Cut(s, ".")
	neg := strings.HasPrefix(intPart, "-")
	intPart = strings.TrimPrefix(intPart, "-")
	var b strings.Builder
	for i, r := range intPart {
		if i > 0 && (len(intPart)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(r)
	}
	out := b.String()
	if neg {
		out = "-" + out
	}
	if hasFrac {
		out += "." + frac
	}
	return out
}

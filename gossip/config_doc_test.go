package gossip_test

import (
	"fmt"
	"math"
	"os"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/plumtree-go/plumtree/gossip"
)

// The table of Config fields in docs/TUNING.md is checked against the
// presets, so that the documentation cannot drift from the code: every cell
// must be the preset's value as formatDocValue writes it, every exported
// field (Compression's included, as Compression.Algorithm and so on) must
// have its row, and a value is bold exactly where it differs from
// DefaultConfig.

const tuningDoc = "../docs/TUNING.md"

var docPresets = []struct {
	column string
	cfg    gossip.Config
}{
	{"DefaultConfig", gossip.DefaultConfig()},
	{"LANConfig", gossip.LANConfig()},
	{"WANConfig", gossip.WANConfig()},
	{"LargeClusterConfig", gossip.LargeClusterConfig()},
}

// configFields flattens a Config into its exported fields by name, in
// declaration order; struct-valued fields become Parent.Child.
func configFields(t *testing.T, v reflect.Value, prefix string) (names []string, values map[string]reflect.Value) {
	values = make(map[string]reflect.Value)
	typ := v.Type()
	for i := range typ.NumField() {
		f := typ.Field(i)
		if !f.IsExported() {
			continue
		}
		name := prefix + f.Name
		fv := v.Field(i)
		if f.Type.Kind() == reflect.Struct {
			sub, subv := configFields(t, fv, name+".")
			names = append(names, sub...)
			for k, x := range subv {
				values[k] = x
			}
			continue
		}
		names = append(names, name)
		values[name] = fv
	}
	return names, values
}

// formatDocValue writes a value as the table does: durations as
// time.Duration.String, integers with thousands separators (exact MiB as
// "N MiB"), floats likewise when whole, strings quoted.
func formatDocValue(t *testing.T, field string, v reflect.Value) string {
	t.Helper()
	if v.Type() == reflect.TypeFor[time.Duration]() {
		return time.Duration(v.Int()).String()
	}
	switch v.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return formatDocInt(v.Int())
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return formatDocInt(int64(v.Uint()))
	case reflect.Float32, reflect.Float64:
		f := v.Float()
		if f == math.Trunc(f) && math.Abs(f) < 1e15 {
			return formatDocInt(int64(f))
		}
		return strconv.FormatFloat(f, 'g', -1, 64)
	case reflect.String:
		return strconv.Quote(v.String())
	case reflect.Bool:
		return strconv.FormatBool(v.Bool())
	}
	t.Fatalf("Config.%s has type %s, which the table test cannot format yet: teach formatDocValue", field, v.Type())
	return ""
}

func formatDocInt(n int64) string {
	if n != 0 && n%(1<<20) == 0 {
		return fmt.Sprintf("%d MiB", n>>20)
	}
	s := strconv.FormatInt(n, 10)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, r := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(r)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

// docTable returns the rows of the table between the config-table markers,
// each split into trimmed cells.
func docTable(t *testing.T) (header []string, rows [][]string) {
	t.Helper()
	doc, err := os.ReadFile(tuningDoc)
	if err != nil {
		t.Fatal(err)
	}
	text := string(doc)
	start := strings.Index(text, "<!-- config-table -->")
	end := strings.Index(text, "<!-- /config-table -->")
	if start < 0 || end < start {
		t.Fatalf("%s: no table between <!-- config-table --> and <!-- /config-table -->", tuningDoc)
	}
	for _, line := range strings.Split(text[start:end], "\n") {
		line = strings.TrimSpace(line)
		if !strings.HasPrefix(line, "|") {
			continue
		}
		cells := strings.Split(strings.Trim(line, "|"), "|")
		for i := range cells {
			cells[i] = strings.TrimSpace(cells[i])
		}
		switch {
		case header == nil:
			header = cells
		case strings.Trim(cells[0], "-: ") == "":
			// the separator row
		default:
			rows = append(rows, cells)
		}
	}
	return header, rows
}

func unmark(cell string) (text string, bold bool) {
	bold = strings.HasPrefix(cell, "**") && strings.HasSuffix(cell, "**") && len(cell) > 4
	cell = strings.TrimSuffix(strings.TrimPrefix(cell, "**"), "**")
	return strings.Trim(cell, "`"), bold
}

func TestConfigTableMatchesPresets(t *testing.T) {
	header, rows := docTable(t)
	want := []string{"Field"}
	for _, p := range docPresets {
		want = append(want, "`"+p.column+"`")
	}
	want = append(want, "Meaning")
	if !reflect.DeepEqual(header, want) {
		t.Fatalf("%s: table header is %q, want %q", tuningDoc, header, want)
	}

	names, _ := configFields(t, reflect.ValueOf(docPresets[0].cfg), "")
	values := make([]map[string]reflect.Value, len(docPresets))
	for i, p := range docPresets {
		_, values[i] = configFields(t, reflect.ValueOf(p.cfg), "")
	}

	seen := make(map[string]bool)
	for _, row := range rows {
		if len(row) != len(want) {
			t.Errorf("row %q has %d cells, want %d", row, len(row), len(want))
			continue
		}
		field, _ := unmark(row[0])
		if seen[field] {
			t.Errorf("Config.%s has two rows", field)
		}
		seen[field] = true
		if _, ok := values[0][field]; !ok {
			t.Errorf("the table has a row for %q, which is not an exported Config field", field)
			continue
		}
		def := formatDocValue(t, field, values[0][field])
		for i, p := range docPresets {
			got, bold := unmark(row[1+i])
			v := formatDocValue(t, field, values[i][field])
			if got != v {
				t.Errorf("Config.%s in %s: the table says %q, the preset has %q", field, p.column, got, v)
			}
			if differs := i > 0 && v != def; bold != differs {
				t.Errorf("Config.%s in %s: bold is %v, want %v (bold marks a value that differs from DefaultConfig)", field, p.column, bold, differs)
			}
		}
		if row[len(row)-1] == "" {
			t.Errorf("Config.%s: the meaning is empty", field)
		}
	}
	for _, name := range names {
		if !seen[name] {
			t.Errorf("Config.%s is not in the table in %s", name, tuningDoc)
		}
	}
}

// The formatter itself, on the forms the table uses.
func TestFormatDocValue(t *testing.T) {
	for _, c := range []struct {
		v    any
		want string
	}{
		{3, "3"}, {1024, "1,024"}, {10_000, "10,000"}, {1 << 20, "1 MiB"}, {8 << 20, "8 MiB"}, {-5, "-5"},
		{2000.0, "2,000"}, {2.5, "2.5"}, {100 * time.Millisecond, "100ms"}, {2 * time.Minute, "2m0s"},
		{"", `""`}, {"zstd", `"zstd"`},
	} {
		if got := formatDocValue(t, "x", reflect.ValueOf(c.v)); got != c.want {
			t.Errorf("formatDocValue(%v) = %q, want %q", c.v, got, c.want)
		}
	}
}

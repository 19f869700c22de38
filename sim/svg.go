package sim

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// WritePlots writes reliability.svg, rmr.svg and ldh.svg into dir (made if
// missing): each measure per broadcast, one line per protocol. The files
// are plain SVG, byte-identical for the same Config.
func (r *Report) WritePlots(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	charts := []struct {
		file, title string
		get         func(BroadcastResult) float64
		fromZero    bool
		dashed      func(BroadcastResult) float64 // a second measure, dashed
	}{
		{"reliability.svg", "Reliability per broadcast (solid: within the settle time; dashed: within the interval)",
			func(b BroadcastResult) float64 { return b.Reliability }, false, func(b BroadcastResult) float64 { return b.Prompt }},
		{"rmr.svg", "RMR per broadcast (payloads received / (delivered - 1) - 1)", func(b BroadcastResult) float64 { return b.RMR }, true, nil},
		{"ldh.svg", "Last delivery hop per broadcast", func(b BroadcastResult) float64 { return float64(b.LDH) }, true, nil},
	}
	for _, c := range charts {
		svg := r.chart(c.title, c.get, c.dashed, c.fromZero)
		if err := os.WriteFile(filepath.Join(dir, c.file), []byte(svg), 0o644); err != nil {
			return err
		}
	}
	return nil
}

var seriesColor = map[Protocol]string{Plumtree: "#1f77b4", Flood: "#d62728"}

func (r *Report) chart(title string, get, dashed func(BroadcastResult) float64, fromZero bool) string {
	const W, H, left, right, top, bottom = 860, 340, 70, 130, 40, 50
	pw, ph := float64(W-left-right), float64(H-top-bottom)
	n := 0
	lo, hi := math.Inf(1), math.Inf(-1)
	for _, res := range r.Results {
		n = max(n, len(res.Broadcasts))
		for _, b := range res.Broadcasts {
			v := get(b)
			lo, hi = min(lo, v), max(hi, v)
			if dashed != nil {
				lo = min(lo, dashed(b))
			}
		}
	}
	if n == 0 {
		lo, hi = 0, 1
	}
	if fromZero {
		lo = 0
	} else {
		// Reliability: at most 1; show at least the top 5%.
		lo, hi = min(lo, 0.95), 1
	}
	if hi <= lo {
		hi = lo + 1
	}
	step := niceStep((hi - lo) / 5)
	lo = math.Floor(lo/step) * step
	hi = math.Ceil(hi/step) * step
	if hi <= lo {
		hi = lo + step
	}
	xOf := func(i int) float64 {
		if n <= 1 {
			return left
		}
		return left + pw*float64(i)/float64(n-1)
	}
	yOf := func(v float64) float64 { return top + ph*(1-(v-lo)/(hi-lo)) }
	f := func(x float64) string { return strconv.FormatFloat(x, 'f', 1, 64) }

	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="12">`+"\n", W, H, W, H)
	fmt.Fprintf(&b, `<rect width="%d" height="%d" fill="white"/>`+"\n", W, H)
	fmt.Fprintf(&b, `<text x="%d" y="22" font-size="14" font-weight="bold">%s</text>`+"\n", left, esc(title))
	c := r.Config
	sub := fmt.Sprintf("%d nodes, %s overlay, %s, latency %s, loss %s%%, seed %d", c.Nodes, c.Overlay, c.Scenario, c.Latency, ff(c.Loss*100, 1), c.Seed)
	fmt.Fprintf(&b, `<text x="%d" y="%d" fill="#555">%s</text>`+"\n", left, H-10, esc(sub))
	// Warm-up band.
	if c.Warmup > 0 && n > 1 {
		x1 := xOf(min(c.Warmup, n-1))
		fmt.Fprintf(&b, `<rect x="%d" y="%d" width="%s" height="%s" fill="#eeeeee"/>`+"\n", left, top, f(x1-left), f(ph))
		fmt.Fprintf(&b, `<text x="%d" y="%d" fill="#888">warm-up</text>`+"\n", left+4, top+14)
	}
	// Grid and y labels.
	for i := 0; lo+float64(i)*step <= hi+step/2; i++ {
		v := lo + float64(i)*step
		y := yOf(v)
		fmt.Fprintf(&b, `<line x1="%d" y1="%s" x2="%d" y2="%s" stroke="#ddd"/>`+"\n", left, f(y), W-right, f(y))
		fmt.Fprintf(&b, `<text x="%d" y="%s" text-anchor="end">%s</text>`+"\n", left-6, f(y+4), esc(label(v, step)))
	}
	// X axis and labels.
	fmt.Fprintf(&b, `<line x1="%d" y1="%s" x2="%d" y2="%s" stroke="#333"/>`+"\n", left, f(top+ph), W-right, f(top+ph))
	fmt.Fprintf(&b, `<line x1="%d" y1="%d" x2="%d" y2="%s" stroke="#333"/>`+"\n", left, top, left, f(top+ph))
	xstep := int(math.Max(1, niceStep(float64(n)/10)))
	for i := 0; i < n; i += xstep {
		fmt.Fprintf(&b, `<text x="%s" y="%s" text-anchor="middle">%d</text>`+"\n", f(xOf(i)), f(top+ph+16), i)
	}
	fmt.Fprintf(&b, `<text x="%s" y="%s" text-anchor="middle">broadcast</text>`+"\n", f(left+pw/2), f(top+ph+32))
	// The failure.
	if c.Scenario == Failure && n > 1 {
		x := xOf(c.Warmup + c.FailAt)
		fmt.Fprintf(&b, `<line x1="%s" y1="%d" x2="%s" y2="%s" stroke="#999" stroke-dasharray="4 3"/>`+"\n", f(x), top, f(x), f(top+ph))
		fmt.Fprintf(&b, `<text x="%s" y="%d" fill="#666">%s%% fail</text>`+"\n", f(x+4), top+28, ff(c.FailFraction*100, 0))
	}
	// Series and legend.
	for k, res := range r.Results {
		col := seriesColor[res.Protocol]
		var pts []string
		for i, br := range res.Broadcasts {
			pts = append(pts, f(xOf(i))+","+f(yOf(get(br))))
		}
		fmt.Fprintf(&b, `<polyline fill="none" stroke="%s" stroke-width="1.8" points="%s"/>`+"\n", col, strings.Join(pts, " "))
		if dashed != nil {
			var dp []string
			for i, br := range res.Broadcasts {
				dp = append(dp, f(xOf(i))+","+f(yOf(dashed(br))))
			}
			fmt.Fprintf(&b, `<polyline fill="none" stroke="%s" stroke-width="1.2" stroke-dasharray="5 3" points="%s"/>`+"\n", col, strings.Join(dp, " "))
		}
		if len(res.Broadcasts) <= 120 {
			for i, br := range res.Broadcasts {
				fmt.Fprintf(&b, `<circle cx="%s" cy="%s" r="2.2" fill="%s"/>`+"\n", f(xOf(i)), f(yOf(get(br))), col)
			}
		}
		ly := top + 10 + 20*k
		fmt.Fprintf(&b, `<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="%s" stroke-width="3"/>`+"\n", W-right+12, ly, W-right+32, ly, col)
		fmt.Fprintf(&b, `<text x="%d" y="%d">%s</text>`+"\n", W-right+38, ly+4, esc(string(res.Protocol)))
	}
	b.WriteString("</svg>\n")
	return b.String()
}

// niceStep rounds x up to 1, 2 or 5 times a power of ten.
func niceStep(x float64) float64 {
	if x <= 0 || math.IsNaN(x) || math.IsInf(x, 0) {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(x)))
	for _, m := range []float64{1, 2, 5, 10} {
		if m*p >= x {
			return m * p
		}
	}
	return 10 * p
}

// label prints v with as many decimals as step needs.
func label(v, step float64) string {
	d := 0
	for s := step; s < 1-1e-9 && d < 6; s *= 10 {
		d++
	}
	return strconv.FormatFloat(v, 'f', d, 64)
}

func esc(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", `"`, "&quot;").Replace(s)
}

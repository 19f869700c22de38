package sim

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// Distribution names a latency distribution.
type Distribution string

// The latency distributions.
const (
	Constant  Distribution = "const"     // every link A
	Uniform   Distribution = "uniform"   // uniform in [A, B)
	Normal    Distribution = "normal"    // mean A, standard deviation B, cut at 0
	LogNormal Distribution = "lognormal" // median A, shape Sigma
)

// Latency is the one-way delay of the simulated links. Each link (an
// unordered pair of nodes) draws its delay once from the distribution, by a
// hash of the run's seed and the pair, so a link keeps its delay for the whole
// run, both directions are alike, and no per-link state is stored.
type Latency struct {
	Dist  Distribution  // the distribution's kind
	A, B  time.Duration // constant: A; uniform: A to B; normal: mean A, deviation B; lognormal: median A
	Sigma float64       // LogNormal only
}

// String returns the form ParseLatency reads.
func (l Latency) String() string {
	switch l.Dist {
	case Uniform:
		return fmt.Sprintf("uniform:%v-%v", l.A, l.B)
	case Normal:
		return fmt.Sprintf("normal:%v,%v", l.A, l.B)
	case LogNormal:
		return fmt.Sprintf("lognormal:%v,%s", l.A, strconv.FormatFloat(l.Sigma, 'g', -1, 64))
	default:
		return fmt.Sprintf("const:%v", l.A)
	}
}

// ParseLatency reads a latency distribution: "10ms" or "const:10ms",
// "uniform:5ms-15ms", "normal:10ms,3ms" (mean, standard deviation) or
// "lognormal:10ms,0.5" (median, shape).
func ParseLatency(s string) (Latency, error) {
	kind, arg, ok := strings.Cut(s, ":")
	if !ok {
		kind, arg = string(Constant), s
	}
	bad := func(err error) (Latency, error) {
		return Latency{}, fmt.Errorf("latency %q: %v (want 10ms, const:10ms, uniform:5ms-15ms, normal:10ms,3ms or lognormal:10ms,0.5)", s, err)
	}
	switch Distribution(kind) {
	case Constant:
		d, err := time.ParseDuration(arg)
		if err != nil {
			return bad(err)
		}
		if d < 0 {
			return bad(fmt.Errorf("negative"))
		}
		return Latency{Dist: Constant, A: d}, nil
	case Uniform:
		a, b, ok := strings.Cut(arg, "-")
		if !ok {
			return bad(fmt.Errorf("no range"))
		}
		lo, err1 := time.ParseDuration(a)
		hi, err2 := time.ParseDuration(b)
		if err1 != nil || err2 != nil || lo < 0 || hi < lo {
			return bad(fmt.Errorf("bad range"))
		}
		return Latency{Dist: Uniform, A: lo, B: hi}, nil
	case Normal:
		a, b, ok := strings.Cut(arg, ",")
		if !ok {
			return bad(fmt.Errorf("want mean,stddev"))
		}
		m, err1 := time.ParseDuration(a)
		sd, err2 := time.ParseDuration(b)
		if err1 != nil || err2 != nil || m < 0 || sd < 0 {
			return bad(fmt.Errorf("bad mean or stddev"))
		}
		return Latency{Dist: Normal, A: m, B: sd}, nil
	case LogNormal:
		a, b, ok := strings.Cut(arg, ",")
		if !ok {
			return bad(fmt.Errorf("want median,sigma"))
		}
		m, err1 := time.ParseDuration(a)
		sg, err2 := strconv.ParseFloat(b, 64)
		if err1 != nil || err2 != nil || m <= 0 || sg < 0 || math.IsNaN(sg) || math.IsInf(sg, 0) {
			return bad(fmt.Errorf("bad median or sigma"))
		}
		return Latency{Dist: LogNormal, A: m, Sigma: sg}, nil
	}
	return bad(fmt.Errorf("unknown distribution %q", kind))
}

// link returns the delay of the link between a and b under seed.
func (l Latency) link(seed uint64, a, b int32) int64 {
	if a > b {
		a, b = b, a
	}
	h := mix(seed ^ mix(uint64(uint32(a))<<32|uint64(uint32(b))))
	u1 := unit(h)
	var d float64
	switch l.Dist {
	case Uniform:
		d = float64(l.A) + u1*float64(l.B-l.A)
	case Normal:
		d = float64(l.A) + float64(l.B)*gauss(u1, unit(mix(h)))
	case LogNormal:
		d = float64(l.A) * math.Exp(l.Sigma*gauss(u1, unit(mix(h))))
	default:
		d = float64(l.A)
	}
	if d < 0 || math.IsNaN(d) {
		return 0
	}
	if d > float64(time.Hour) {
		return int64(time.Hour)
	}
	return int64(d)
}

// mix is SplitMix64's finalizer: a bijective hash of x.
func mix(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

// unit maps h to [0, 1).
func unit(h uint64) float64 { return float64(h>>11) / (1 << 53) }

// gauss is a standard normal variate from two uniforms (Box-Muller).
func gauss(u1, u2 float64) float64 {
	return math.Sqrt(-2*math.Log(1-u1)) * math.Cos(2*math.Pi*u2)
}

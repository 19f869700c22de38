package sim

import (
	"math"

	"github.com/plumtree-go/plumtree/gossip"
)

// From the kernel's state to a Result: per-broadcast measures and their
// summaries.

// result computes the measures.
func (s *sim) result() *Result {
	r := &Result{Protocol: s.cfg.Protocol, Totals: s.tot}
	settle := int64(s.cfg.Settle)
	for k, st := range s.bc {
		br := BroadcastResult{Index: k, Warmup: k < s.cfg.Warmup, Origin: st.origin,
			SentAtMS: ms(st.at), Payloads: st.payloads, LDH: int(st.ldh), Hops: st.hops}
		prompt := 0
		for i := range s.nodes {
			n := &s.nodes[i]
			if n.joinedAt <= st.at && n.failedAt > st.at+settle {
				br.Correct++
				if st.delivered.has(int32(i)) {
					br.Delivered++
				}
				if st.prompt.has(int32(i)) || int32(i) == st.origin {
					prompt++
				}
			}
		}
		if br.Correct > 0 {
			br.Reliability = float64(br.Delivered) / float64(br.Correct)
			br.Prompt = float64(prompt) / float64(br.Correct)
		}
		if st.deliveries > 0 {
			br.RMR = float64(st.payloads)/float64(st.deliveries) - 1
			br.LastDeliveryMS = ms(st.last - st.at)
		}
		br.IHave = st.control[gossip.KindIHave]
		br.Graft = st.control[gossip.KindGraft]
		br.Prune = st.control[gossip.KindPrune]
		br.Exchange = st.control[gossip.KindExchange]
		br.Control = br.IHave + br.Graft + br.Prune + br.Exchange
		if s.cfg.cutScenario() {
			br.Side = string(rune('A' + s.nodes[st.origin].side))
			br.Cut = st.cut
		}
		r.Broadcasts = append(r.Broadcasts, br)
	}
	r.Summary = summarize(r.Broadcasts)
	r.Windows = windows(r.Broadcasts, s.cfg.Window, s.cfg.windowAnchor())
	if s.cfg.cutScenario() {
		r.Cut = s.cutSummary(r.Broadcasts)
	}
	if s.cfg.Protocol == Plumtree {
		var eager, up int
		for i := range s.nodes {
			if n := &s.nodes[i]; n.up() && n.eng != nil {
				eager += len(n.eng.EagerPeers())
				up++
			}
		}
		if up > 0 {
			r.Totals.FinalEagerMean = round(float64(eager)/float64(up), 4)
		}
	}
	return r
}

func summarize(bs []BroadcastResult) Summary {
	var sm Summary
	sm.ReliabilityMin, sm.PromptMin = 1, 1
	sm.ReliableFrom = -1
	var measured []BroadcastResult
	for _, b := range bs {
		if !b.Warmup {
			measured = append(measured, b)
		}
	}
	sm.Measured = len(measured)
	if len(measured) == 0 {
		return sm
	}
	for i, b := range measured {
		sm.ReliabilityMean += b.Reliability
		sm.ReliabilityMin = min(sm.ReliabilityMin, b.Reliability)
		sm.PromptMean += b.Prompt
		sm.PromptMin = min(sm.PromptMin, b.Prompt)
		if b.Reliability == 1 {
			sm.FullyReliable++
			if sm.ReliableFrom < 0 {
				sm.ReliableFrom = i
			}
		} else {
			sm.ReliableFrom = -1
		}
		sm.RMRMean += b.RMR
		sm.RMRMax = max(sm.RMRMax, b.RMR)
		sm.LDHMean += float64(b.LDH)
		sm.LDHMax = max(sm.LDHMax, b.LDH)
		sm.PayloadsMean += float64(b.Payloads)
		sm.ControlMean += float64(b.Control)
		sm.LastDeliveryMeanMS += b.LastDeliveryMS
	}
	n := float64(len(measured))
	sm.ReliabilityMean = round(sm.ReliabilityMean/n, 6)
	sm.PromptMean = round(sm.PromptMean/n, 6)
	sm.RMRMean = round(sm.RMRMean/n, 6)
	sm.LDHMean = round(sm.LDHMean/n, 3)
	sm.PayloadsMean = round(sm.PayloadsMean/n, 3)
	sm.ControlMean = round(sm.ControlMean/n, 3)
	sm.LastDeliveryMeanMS = round(sm.LastDeliveryMeanMS/n, 3)
	return sm
}

func ms(ns int64) float64 { return float64(ns) / 1e6 }

func round(x float64, digits int) float64 {
	p := math.Pow(10, float64(digits))
	return math.Round(x*p) / p
}

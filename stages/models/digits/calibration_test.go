package digits

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/flexiflow/flexiflow/stages/assert"
	"github.com/flexiflow/flexiflow/stages/models"
)

// TestCalibration replays the demo's drift schedule through every model
// with the demo workflow's assertions (RoughnessMax, ConfidenceMin, 80% of
// a batch of 32) and checks the structure the demo relies on:
//
//   - each phase has a different cheapest model that passes most batches
//     (clean: passthrough and centroid; speckle: median and mlp; storm: pca
//     and knn), and the cheaper ones fail most batches;
//   - passing is a sensible proxy: the cheapest passing classifier is more
//     accurate than every cheaper one, and the cheapest passing denoiser's
//     output is closer to the clean image than every cheaper one's and
//     classifies about as well or better;
//   - cost order: passthrough < median < pca and centroid < mlp < knn.
//
// It logs the table of batch pass rates, accuracies and costs that the
// package documentation quotes.
func TestCalibration(t *testing.T) {
	ds := mustLoad(t)
	ms := buildAll(t, ds)
	phases, results := calibrate(t, ds, ms)
	logTable(t, phases, results)

	// want[phase][model]: true = passes at least 80% of batches (90% when
	// clean), false = passes at most 30%; absent = not checked.
	want := map[string]map[string]bool{
		"clean":   {"passthrough": true, "centroid": true},
		"speckle": {"passthrough": false, "median": true, "centroid": false, "mlp": true},
		"storm":   {"passthrough": false, "median": false, "pca": true, "centroid": false, "mlp": false, "knn": true},
	}
	for i, p := range phases {
		for m, pass := range want[p.Name] {
			rate := results[i][m].passRate()
			lo := 0.8
			if p.Name == "clean" {
				lo = 0.9
			}
			if pass && rate < lo {
				t.Errorf("%s: %s passes %.2f of batches, want >= %.2f", p.Name, m, rate, lo)
			}
			if !pass && rate > 0.3 {
				t.Errorf("%s: %s passes %.2f of batches, want <= 0.30", p.Name, m, rate)
			}
		}
		checkProxy(t, p.Name, results[i])
	}
	checkCosts(t, results)
}

const (
	calBatches      = 40  // batches per phase
	calBatchSize    = 32  // records per batch, as in the demo
	calPassFraction = 0.8 // the workflow's batch rule, min_pass_fraction
	// calDownstreamSlack is how much downstream accuracy the cheapest
	// passing denoiser may lose against a cheaper, failing one.
	calDownstreamSlack = 0.03
)

// tally accumulates one model's results over a phase's batches.
type tally struct {
	batches, passed  int
	records, correct int
	nanos            time.Duration
	sqErr            float64        // denoisers: squared error against the clean images
	downstream       map[string]int // denoisers: records each classifier gets right on their output
}

func (t *tally) passRate() float64 { return float64(t.passed) / float64(t.batches) }
func (t *tally) accuracy() float64 { return float64(t.correct) / float64(t.records) }
func (t *tally) mse() float64      { return t.sqErr / float64(t.records*NumPixels) }
func (t *tally) nsPerBatch() int64 { return t.nanos.Nanoseconds() / int64(t.batches) }
func (t *tally) downstreamAccuracy(classifier string) float64 {
	return float64(t.downstream[classifier]) / float64(t.records)
}

// phaseResult holds every model's tally for one phase, by short name
// ("median", "knn").
type phaseResult map[string]*tally

func (r phaseResult) get(name string) *tally {
	if r[name] == nil {
		r[name] = &tally{downstream: map[string]int{}}
	}
	return r[name]
}

func short(name string) string { return strings.TrimPrefix(name, "digits.") }

func buildAll(t *testing.T, ds *Dataset) map[string]models.Model {
	t.Helper()
	r := newRegistry(t, ds)
	ms := map[string]models.Model{}
	for _, n := range append(append([]string{}, denoisers...), classifiers...) {
		ms[short(n)] = mustModel(t, r, n, nil)
	}
	return ms
}

// calibrate runs calBatches batches of every phase of the schedule.
func calibrate(t *testing.T, ds *Dataset, ms map[string]models.Model) ([]Phase, []phaseResult) {
	t.Helper()
	phases := Schedule(len(Schedule(0)) * calBatches)
	rng := rand.New(rand.NewPCG(2026, 1))
	results := make([]phaseResult, len(phases))
	for i, p := range phases {
		results[i] = phaseResult{}
		for b := range calBatches {
			recs, originals := ds.sample(rng, p, p.From+b, calBatchSize)
			runBatch(t, ms, recs, originals, results[i])
		}
	}
	return phases, results
}

// runBatch runs one batch through every denoiser, then every classifier on
// the output of the cheapest denoiser that passed (as the workflow's
// fallback would; pca's when none did), and, for the downstream accuracy
// of the denoisers, every classifier on every denoiser's output.
func runBatch(t *testing.T, ms map[string]models.Model, recs []models.Record, originals []Image, res phaseResult) {
	t.Helper()
	var routed []models.Record
	outs := map[string][]models.Record{}
	for _, name := range denoisers {
		d := short(name)
		out := runTimed(t, ms[d], recs, res.get(d))
		outs[d] = out
		ok := make([]bool, len(out))
		for j, o := range out {
			ok[j] = smooth(o)
			px, _ := Pixels(o)
			res.get(d).sqErr += sqDist(px, originals[j].Pixels[:])
		}
		if batchPasses(ok) {
			res.get(d).passed++
			if routed == nil {
				routed = out
			}
		}
	}
	if routed == nil { // every denoiser failed: the workflow would dead-letter the batch
		routed = outs["pca"]
	}
	for _, name := range classifiers {
		c := short(name)
		tl := res.get(c)
		out := runTimed(t, ms[c], routed, tl)
		ok := make([]bool, len(out))
		for j, o := range out {
			ok[j] = confident(o)
			if o["predicted"] == recs[j]["label"] {
				tl.correct++
			}
		}
		if batchPasses(ok) {
			tl.passed++
		}
		for d, dout := range outs {
			got, err := ms[c].Predict(context.Background(), dout)
			if err != nil {
				t.Fatal(err)
			}
			for j, o := range got {
				if o["predicted"] == recs[j]["label"] {
					res.get(d).downstream[c]++
				}
			}
		}
	}
}

// runTimed runs m on in and adds the call to tl.
func runTimed(t *testing.T, m models.Model, in []models.Record, tl *tally) []models.Record {
	t.Helper()
	start := time.Now()
	out, err := m.Predict(context.Background(), in)
	tl.nanos += time.Since(start)
	if err != nil {
		t.Fatalf("Predict: %v", err)
	}
	if len(out) != len(in) {
		t.Fatalf("Predict returned %d records for %d", len(out), len(in))
	}
	tl.batches++
	tl.records += len(out)
	return out
}

// smooth is the denoise step's record assertions: in range and smooth.
func smooth(rec models.Record) bool {
	px, err := Pixels(rec)
	if err != nil {
		return false
	}
	for _, v := range px {
		if v < 0 || v > MaxPixel {
			return false
		}
	}
	return assert.Roughness(px) <= RoughnessMax
}

// confident is the classify step's record assertions: a digit, confidently.
func confident(rec models.Record) bool {
	p, _ := rec["predicted"].(int32)
	c, _ := rec["confidence"].(float64)
	return c >= ConfidenceMin && p >= 0 && p <= 9
}

// batchPasses applies the workflow's batch rule to per-record verdicts.
func batchPasses(ok []bool) bool {
	n := 0
	for _, b := range ok {
		if b {
			n++
		}
	}
	return float64(n) >= calPassFraction*float64(len(ok))
}

// cheapestPassing is the first model, in cost order, that passes most of
// the phase's batches.
func cheapestPassing(res phaseResult, order []string) string {
	for _, m := range order {
		if res[short(m)].passRate() > 0.5 {
			return short(m)
		}
	}
	return ""
}

// checkProxy checks that the assertions are a sensible proxy for quality
// in one phase.
func checkProxy(t *testing.T, phase string, res phaseResult) {
	t.Helper()
	bestC := cheapestPassing(res, classifiers)
	for _, name := range classifiers {
		c := short(name)
		if bestC == "" || c == bestC {
			break
		}
		if res[c].accuracy() >= res[bestC].accuracy() {
			t.Errorf("%s: %s passes but is no more accurate (%.3f) than %s (%.3f), which fails",
				phase, bestC, res[bestC].accuracy(), c, res[c].accuracy())
		}
	}
	bestD := cheapestPassing(res, denoisers)
	for _, name := range denoisers {
		d := short(name)
		if bestD == "" || d == bestD {
			break
		}
		if res[d].mse() <= res[bestD].mse() {
			t.Errorf("%s: %s passes but its output is no closer to the clean image (mse %.2f) than %s's (%.2f), which fails",
				phase, bestD, res[bestD].mse(), d, res[d].mse())
		}
		if bestC == "" {
			continue
		}
		if got, cheaper := res[bestD].downstreamAccuracy(bestC), res[d].downstreamAccuracy(bestC); got < cheaper-calDownstreamSlack {
			t.Errorf("%s: %s classifies %s's output worse (%.3f) than %s's (%.3f), which fails",
				phase, bestC, bestD, got, d, cheaper)
		}
	}
}

// checkCosts checks the cost order of the models over all phases.
func checkCosts(t *testing.T, results []phaseResult) {
	t.Helper()
	total := map[string]int64{}
	for _, res := range results {
		for m, tl := range res {
			total[m] += tl.nsPerBatch()
		}
	}
	for _, pair := range [][2]string{{"passthrough", "median"}, {"median", "pca"}, {"centroid", "mlp"}, {"mlp", "knn"}} {
		if total[pair[0]] >= total[pair[1]] {
			t.Errorf("%s (%d ns/batch) is not cheaper than %s (%d ns/batch)", pair[0], total[pair[0]], pair[1], total[pair[1]])
		}
	}
}

func logTable(t *testing.T, phases []Phase, results []phaseResult) {
	t.Helper()
	var b strings.Builder
	fmt.Fprintf(&b, "RoughnessMax %.2f, ConfidenceMin %.2f, %d batches of %d per phase\n", RoughnessMax, ConfidenceMin, calBatches, calBatchSize)
	fmt.Fprintf(&b, "%-8s %-12s %9s %9s %6s %10s  %s\n", "phase", "model", "pass-rate", "accuracy", "mse", "ns/batch", "accuracy of centroid/mlp/knn on its output")
	for i, p := range phases {
		for _, name := range denoisers {
			tl := results[i][short(name)]
			fmt.Fprintf(&b, "%-8s %-12s %9.2f %9s %6.1f %10d  %.2f/%.2f/%.2f\n", p.Name, short(name), tl.passRate(), "", tl.mse(), tl.nsPerBatch(),
				tl.downstreamAccuracy("centroid"), tl.downstreamAccuracy("mlp"), tl.downstreamAccuracy("knn"))
		}
		for _, name := range classifiers {
			tl := results[i][short(name)]
			fmt.Fprintf(&b, "%-8s %-12s %9.2f %9.2f %6s %10d\n", p.Name, short(name), tl.passRate(), tl.accuracy(), "", tl.nsPerBatch())
		}
	}
	t.Log("\n" + b.String())
}

func mustLoad(t testing.TB) *Dataset {
	t.Helper()
	ds, err := Load()
	if err != nil {
		t.Fatal(err)
	}
	return ds
}

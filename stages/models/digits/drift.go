package digits

import (
	"fmt"
	"math/rand/v2"

	"github.com/flexiflow/flexiflow/stages/models"
)

// Phase is one stretch of the demo's drifting input stream: from batch
// index From on (until the next phase begins), MakeBatch corrupts every
// image the same way. The zero corruption leaves images unchanged.
type Phase struct {
	Name string
	// From is the index of the phase's first batch.
	From int
	// Fade is the fraction of ink lost: every pixel is scaled by 1-Fade.
	Fade float64
	// HotPixels is the fraction of pixels stuck at MaxPixel.
	HotPixels float64
	// Noise is the standard deviation of the Gaussian noise added to every
	// pixel, in pixel units (pixels run 0..16).
	Noise float64
}

// Corrupt returns a corrupted copy of px: faded, then hot pixels, then
// noise, then clipped to [0, MaxPixel].
func (p Phase) Corrupt(rng *rand.Rand, px []float64) []float64 {
	out := make([]float64, len(px))
	p.corruptInto(rng, out, px)
	return out
}

// corruptInto writes the corrupted px into out, which has px's length.
func (p Phase) corruptInto(rng *rand.Rand, out, px []float64) {
	for i, v := range px {
		v *= 1 - p.Fade
		if p.HotPixels > 0 && rng.Float64() < p.HotPixels {
			v = MaxPixel
		}
		if p.Noise > 0 {
			v += rng.NormFloat64() * p.Noise
		}
		out[i] = v
	}
	clip(out)
}

// Schedule splits a run of totalBatches batches into the demo's three
// phases, in order and of (nearly) equal length:
//
//	clean    no corruption
//	speckle  ink faded to 55%, 13% of pixels stuck hot
//	storm    Gaussian noise of standard deviation 8, 3% of pixels stuck hot
//
// Phase i starts at batch ceil(i*totalBatches/3), so a run shorter than
// three batches starts clean and may skip later phases. The package
// documentation says what each phase does to each model.
func Schedule(totalBatches int) []Phase {
	phases := []Phase{
		{Name: "clean"},
		{Name: "speckle", Fade: 0.45, HotPixels: 0.13},
		{Name: "storm", Noise: 8, HotPixels: 0.03},
	}
	total, n := max(totalBatches, 0), len(phases)
	for i := range phases {
		phases[i].From = (total*i + n - 1) / n
	}
	return phases
}

// PhaseAt returns the phase that batch batchIndex of a run of
// totalBatches falls in: the last one whose From is at most batchIndex.
func PhaseAt(batchIndex, totalBatches int) Phase {
	phases := Schedule(totalBatches)
	cur := phases[0]
	for _, p := range phases[1:] {
		if batchIndex >= p.From {
			cur = p
		}
	}
	return cur
}

// MakeBatch builds batch batchIndex of a run of totalBatches: size test
// images drawn at random with rng, corrupted as the batch's phase says, as
// image records with ids "<batchIndex>-<j>". It returns the phase's name
// and the records.
func (ds *Dataset) MakeBatch(rng *rand.Rand, batchIndex, totalBatches, size int) (phase string, records []models.Record) {
	p := PhaseAt(batchIndex, totalBatches)
	records, _ = ds.sample(rng, p, batchIndex, size)
	return p.Name, records
}

// sample draws size test images with rng and corrupts them as p says. It
// returns them as image records and, in the same order, the clean
// originals.
func (ds *Dataset) sample(rng *rand.Rand, p Phase, batchIndex, size int) ([]models.Record, []Image) {
	records := make([]models.Record, max(size, 0))
	originals := make([]Image, len(records))
	for j := range records {
		img := ds.test[rng.IntN(len(ds.test))]
		id := fmt.Sprintf("%d-%d", batchIndex, j)
		records[j] = ImageRecord(id, img.Label, p.Corrupt(rng, img.Pixels[:]))
		originals[j] = img
	}
	return records, originals
}

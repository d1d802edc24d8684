package digits

import (
	"math"
	"math/rand/v2"
)

// mlpConfig is the MLP's size and training schedule. Training is plain
// minibatch SGD on the cross-entropy loss, seeded and single-threaded, so
// it is deterministic.
type mlpConfig struct {
	hidden int
	epochs int
	batch  int
	rate   float64
	seed   uint64
	// augment is the strongest corruption applied to training examples:
	// each example is corrupted afresh by a random phase whose every
	// field is drawn uniformly between zero and augment's.
	augment Phase
	// calibrate is the strongest corruption of the copies of the training
	// images the softmax temperature is fitted on.
	calibrate Phase
}

func defaultMLPConfig() mlpConfig {
	return mlpConfig{
		hidden:    32,
		epochs:    40,
		batch:     16,
		rate:      0.1,
		seed:      20260101,
		augment:   Phase{Fade: 0.6, HotPixels: 0.15},
		calibrate: Phase{Noise: 10, HotPixels: 0.2},
	}
}

// randomPhase draws a phase whose fields lie between zero and limit's.
func randomPhase(rng *rand.Rand, limit Phase) Phase {
	return Phase{
		Fade:      rng.Float64() * limit.Fade,
		HotPixels: rng.Float64() * limit.HotPixels,
		Noise:     rng.Float64() * limit.Noise,
	}
}

// mlpParams is a one-hidden-layer perceptron: tanh hidden units, softmax
// output with a temperature.
type mlpParams struct {
	w1          [][]float64 // hidden x NumPixels
	b1          []float64
	w2          [][]float64 // NumClasses x hidden
	b2          []float64
	temperature float64
}

// newMLP returns a network with all weights zero.
func newMLP(hidden int) *mlpParams {
	return &mlpParams{
		w1:          newMatrix(hidden, NumPixels),
		b1:          make([]float64, hidden),
		w2:          newMatrix(NumClasses, hidden),
		b2:          make([]float64, NumClasses),
		temperature: 1,
	}
}

func newMatrix(rows, cols int) [][]float64 {
	m := make([][]float64, rows)
	for i := range m {
		m[i] = make([]float64, cols)
	}
	return m
}

// randomize sets every row's weights uniform in ±1/sqrt(len(row)).
func randomize(rng *rand.Rand, m [][]float64) {
	for _, row := range m {
		scale := 1 / math.Sqrt(float64(len(row)))
		for j := range row {
			row[j] = (2*rng.Float64() - 1) * scale
		}
	}
}

// contrastRank picks the pixel inputScale normalises by: the third
// brightest, so that a stray hot pixel or two does not set the scale.
const contrastRank = 3

// inputScale normalises contrast: it maps the image's third brightest pixel
// to 1, so faded ink looks like fresh ink. Nearly blank images are scaled
// as if that pixel were 1.
func inputScale(px []float64) float64 {
	var top [contrastRank]float64 // brightest first
	for _, v := range px {
		for i, t := range top {
			if v > t {
				copy(top[i+1:], top[i:contrastRank-1])
				top[i] = v
				break
			}
		}
	}
	return 1 / max(top[contrastRank-1], 1)
}

// forward computes the hidden activations, into h, and the output logits.
func (p *mlpParams) forward(px, h []float64) (logits [NumClasses]float64) {
	scale := inputScale(px)
	for u, w := range p.w1 {
		s := p.b1[u]
		for j, v := range px {
			s += w[j] * v * scale
		}
		h[u] = math.Tanh(s)
	}
	for c, w := range p.w2 {
		s := p.b2[c]
		for u, a := range h {
			s += w[u] * a
		}
		logits[c] = s
	}
	return logits
}

func (p *mlpParams) logits(px []float64) [NumClasses]float64 {
	return p.forward(px, make([]float64, len(p.w1)))
}

// probs is the softmax of the logits divided by the temperature.
func (p *mlpParams) probs(px []float64) [NumClasses]float64 {
	return tempered(p.logits(px), p.temperature)
}

// trainMLP fits an MLP to imgs, then fits its softmax temperature on
// corrupted copies of imgs.
func trainMLP(imgs []Image, cfg mlpConfig) *mlpParams {
	rng := rand.New(rand.NewPCG(cfg.seed, cfg.seed+1))
	p := newMLP(cfg.hidden)
	randomize(rng, p.w1)
	randomize(rng, p.w2)
	order := make([]int, len(imgs))
	for i := range order {
		order[i] = i
	}
	g := newMLP(cfg.hidden) // gradient accumulator
	h, dh := make([]float64, cfg.hidden), make([]float64, cfg.hidden)
	px := make([]float64, NumPixels)
	for range cfg.epochs {
		rng.Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
		for start := 0; start < len(order); start += cfg.batch {
			end := min(start+cfg.batch, len(order))
			g.zero()
			for _, i := range order[start:end] {
				randomPhase(rng, cfg.augment).corruptInto(rng, px, imgs[i].Pixels[:])
				p.accumulate(g, px, imgs[i].Label, h, dh)
			}
			p.step(g, cfg.rate/float64(end-start))
		}
	}
	p.temperature = p.fitTemperature(rng, imgs, cfg.calibrate)
	return p
}

// fitTemperature fits the softmax temperature on copies of imgs corrupted
// by random phases up to limit.
func (p *mlpParams) fitTemperature(rng *rand.Rand, imgs []Image, limit Phase) float64 {
	scores := make([][NumClasses]float64, len(imgs))
	labels := make([]int, len(imgs))
	px := make([]float64, NumPixels)
	for i, img := range imgs {
		randomPhase(rng, limit).corruptInto(rng, px, img.Pixels[:])
		scores[i] = p.logits(px)
		labels[i] = img.Label
	}
	return fitTemperature(scores, labels)
}

func (p *mlpParams) zero() {
	for _, m := range [][][]float64{p.w1, p.w2} {
		for _, row := range m {
			clear(row)
		}
	}
	clear(p.b1)
	clear(p.b2)
}

// accumulate adds the cross-entropy gradient of one example to g; h and dh
// are scratch space of the hidden layer's size.
func (p *mlpParams) accumulate(g *mlpParams, px []float64, label int, h, dh []float64) {
	out := p.forward(px, h)
	softmax(out[:])
	clear(dh)
	for c := range out {
		d := out[c]
		if c == label {
			d--
		}
		g.b2[c] += d
		for u, a := range h {
			g.w2[c][u] += d * a
			dh[u] += d * p.w2[c][u]
		}
	}
	scale := inputScale(px)
	for u, a := range h {
		d := dh[u] * (1 - a*a)
		g.b1[u] += d
		for j, v := range px {
			g.w1[u][j] += d * v * scale
		}
	}
}

// step moves p against the gradient g.
func (p *mlpParams) step(g *mlpParams, rate float64) {
	for u := range p.w1 {
		for j := range p.w1[u] {
			p.w1[u][j] -= rate * g.w1[u][j]
		}
		p.b1[u] -= rate * g.b1[u]
	}
	for c := range p.w2 {
		for u := range p.w2[c] {
			p.w2[c][u] -= rate * g.w2[c][u]
		}
		p.b2[c] -= rate * g.b2[c]
	}
}

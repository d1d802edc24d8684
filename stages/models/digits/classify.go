package digits

import (
	"math"

	"github.com/flexiflow/flexiflow/stages/models"
)

// DefaultK is digits.knn's default number of neighbours.
const DefaultK = 7

// newClassifier wraps a function from pixels to class probabilities as a
// model whose output is a prediction record: id and label carried over,
// predicted (the most probable class) and confidence (its probability).
func newClassifier(probs func(px []float64) [NumClasses]float64) models.Model {
	return perImage(func(px []float64, out models.Record) {
		p := probs(px)
		best := argmax(p[:])
		out["predicted"] = int32(best)
		out["confidence"] = min(max(p[best], 0), 1)
	})
}

func argmax(xs []float64) int {
	best := 0
	for i, x := range xs {
		if x > xs[best] {
			best = i
		}
	}
	return best
}

// softmax turns scores into probabilities, in place.
func softmax(scores []float64) {
	m := scores[argmax(scores)]
	sum := 0.0
	for i, s := range scores {
		scores[i] = math.Exp(s - m)
		sum += scores[i]
	}
	for i := range scores {
		scores[i] /= sum
	}
}

func sqDist(a, b []float64) float64 {
	s := 0.0
	for i := range a {
		d := a[i] - b[i]
		s += d * d
	}
	return s
}

// tempered is the softmax of scores divided by temperature t.
func tempered(scores [NumClasses]float64, t float64) [NumClasses]float64 {
	for c := range scores {
		scores[c] /= t
	}
	softmax(scores[:])
	return scores
}

// fitTemperature returns the temperature, on a log-spaced grid, under which
// tempered(scores[i]) gives the labels the highest mean log-likelihood.
func fitTemperature(scores [][NumClasses]float64, labels []int) float64 {
	best, bestLL := 1.0, math.Inf(-1)
	for t := 0.01; t <= 100; t *= 1.05 {
		ll := 0.0
		for i, s := range scores {
			p := tempered(s, t)
			ll += math.Log(max(p[labels[i]], 1e-300))
		}
		if ll > bestLL {
			best, bestLL = t, ll
		}
	}
	return best
}

// centroidParams is the nearest-centroid classifier: one mean image per
// class, and the temperature that turns squared distances into
// probabilities.
type centroidParams struct {
	centroids   [NumClasses][]float64
	temperature float64
}

// fitCentroid computes the class means of imgs and fits the temperature on
// them too.
func fitCentroid(imgs []Image) *centroidParams {
	p := &centroidParams{}
	var counts [NumClasses]float64
	for c := range p.centroids {
		p.centroids[c] = make([]float64, NumPixels)
	}
	for _, img := range imgs {
		counts[img.Label]++
		for j, v := range img.Pixels {
			p.centroids[img.Label][j] += v
		}
	}
	for c, cen := range p.centroids {
		for j := range cen {
			cen[j] /= max(counts[c], 1)
		}
	}
	scores := make([][NumClasses]float64, len(imgs))
	labels := make([]int, len(imgs))
	for i, img := range imgs {
		scores[i] = p.scores(img.Pixels[:])
		labels[i] = img.Label
	}
	p.temperature = fitTemperature(scores, labels)
	return p
}

// probs is the softmax of the scores divided by the temperature.
func (p *centroidParams) probs(px []float64) [NumClasses]float64 {
	return tempered(p.scores(px), p.temperature)
}

// scores are the negative squared distances to the class centroids, in
// units of the squared distance to the nearest one. Scaling by the image's
// own residual makes the confidence depend on how much nearer the winner
// is than the rest relative to how far the image is from all of them: an
// image far from every centroid (noisy, faded) gets a flat, unconfident
// answer.
func (p *centroidParams) scores(px []float64) [NumClasses]float64 {
	var s [NumClasses]float64
	nearest := math.Inf(1)
	for c, cen := range p.centroids {
		s[c] = sqDist(px, cen)
		nearest = min(nearest, s[c])
	}
	nearest = max(nearest, 1)
	for c := range s {
		s[c] = -s[c] / nearest
	}
	return s
}

// knn is the k-nearest-neighbour classifier over the training images.
type knn struct {
	train []Image
	k     int
}

type neighbour struct {
	dist  float64 // squared
	label int
}

// probs scans the whole training set for the k nearest images and returns
// their inverse-distance-weighted vote shares.
func (m knn) probs(px []float64) [NumClasses]float64 {
	nearest := make([]neighbour, 0, m.k+1)
	for _, img := range m.train {
		d := sqDist(px, img.Pixels[:])
		if len(nearest) == m.k && d >= nearest[m.k-1].dist {
			continue
		}
		nearest = insertSorted(nearest, neighbour{d, img.Label}, m.k)
	}
	var votes [NumClasses]float64
	total := 0.0
	for _, n := range nearest {
		w := 1 / (math.Sqrt(n.dist) + 1)
		votes[n.label] += w
		total += w
	}
	for c := range votes {
		votes[c] /= total
	}
	return votes
}

// insertSorted inserts n into ns (ascending by distance), keeping at most k.
func insertSorted(ns []neighbour, n neighbour, k int) []neighbour {
	i := len(ns)
	for i > 0 && ns[i-1].dist > n.dist {
		i--
	}
	ns = append(ns, neighbour{})
	copy(ns[i+1:], ns[i:])
	ns[i] = n
	if len(ns) > k {
		ns = ns[:k]
	}
	return ns
}

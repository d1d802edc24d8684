package digits

import (
	"fmt"
	"maps"
	"math"
	"slices"
	"strings"

	"github.com/flexiflow/flexiflow/stages/models"
)

// Register adds the six digits models to r, backed by ds:
//
//	digits.passthrough, digits.median, digits.pca    (step "denoise")
//	digits.centroid, digits.mlp, digits.knn          (step "classify")
//
// Models train on ds's training split the first time any factory needs
// them; ds caches the result, so later builds reuse it.
func Register(r *models.Registry, ds *Dataset) {
	r.Register("digits.passthrough", ds.passthroughFactory)
	r.Register("digits.median", ds.medianFactory)
	r.Register("digits.pca", ds.pcaFactory)
	r.Register("digits.centroid", ds.centroidFactory)
	r.Register("digits.mlp", ds.mlpFactory)
	r.Register("digits.knn", ds.knnFactory)
}

func (ds *Dataset) passthroughFactory(opts map[string]any) (models.Model, error) {
	if err := checkOptions(opts); err != nil {
		return nil, err
	}
	return newDenoiser(passthrough), nil
}

// medianFactory accepts option "threshold" (0..16, default
// DefaultMedianThreshold): how far a stuck pixel must be from its
// neighbourhood's median to be replaced.
func (ds *Dataset) medianFactory(opts map[string]any) (models.Model, error) {
	if err := checkOptions(opts, "threshold"); err != nil {
		return nil, err
	}
	th, err := floatOption(opts, "threshold", DefaultMedianThreshold, 0, MaxPixel)
	if err != nil {
		return nil, err
	}
	return newDenoiser(switchingMedian(th)), nil
}

// pcaFactory accepts option "components" (1..64, default DefaultComponents).
func (ds *Dataset) pcaFactory(opts map[string]any) (models.Model, error) {
	if err := checkOptions(opts, "components"); err != nil {
		return nil, err
	}
	k, err := intOption(opts, "components", DefaultComponents, 1, NumPixels)
	if err != nil {
		return nil, err
	}
	b, err := ds.pcaBasis()
	if err != nil {
		return nil, err
	}
	return newDenoiser(b.projector(k)), nil
}

func (ds *Dataset) centroidFactory(opts map[string]any) (models.Model, error) {
	if err := checkOptions(opts); err != nil {
		return nil, err
	}
	return newClassifier(ds.centroidParams().probs), nil
}

func (ds *Dataset) mlpFactory(opts map[string]any) (models.Model, error) {
	if err := checkOptions(opts); err != nil {
		return nil, err
	}
	return newClassifier(ds.mlpParams().probs), nil
}

// knnFactory accepts option "k" (1..training set size, default DefaultK).
func (ds *Dataset) knnFactory(opts map[string]any) (models.Model, error) {
	if err := checkOptions(opts, "k"); err != nil {
		return nil, err
	}
	k, err := intOption(opts, "k", DefaultK, 1, len(ds.train))
	if err != nil {
		return nil, err
	}
	return newClassifier(knn{train: ds.train, k: k}.probs), nil
}

// floatOption reads a number option in [lo, hi], or def when it is absent.
func floatOption(opts map[string]any, name string, def, lo, hi float64) (float64, error) {
	raw, ok := opts[name]
	if !ok {
		return def, nil
	}
	v, ok := models.Number(raw)
	if !ok {
		return 0, fmt.Errorf("option %s: got %T (%v), want a number", name, raw, raw)
	}
	if !(v >= lo && v <= hi) {
		return 0, fmt.Errorf("option %s: %v is out of range %v..%v", name, v, lo, hi)
	}
	return v, nil
}

// checkOptions rejects option names outside known.
func checkOptions(opts map[string]any, known ...string) error {
	var unknown []string
	for _, name := range slices.Sorted(maps.Keys(opts)) {
		if !slices.Contains(known, name) {
			unknown = append(unknown, name)
		}
	}
	if len(unknown) == 0 {
		return nil
	}
	if len(known) == 0 {
		return fmt.Errorf("unknown option(s) %s: this model takes no options", strings.Join(unknown, ", "))
	}
	return fmt.Errorf("unknown option(s) %s; known options: %s", strings.Join(unknown, ", "), strings.Join(known, ", "))
}

// intOption reads an integer option in [lo, hi], or def when it is absent.
// YAML and JSON decoders give numbers as int, int64, uint64 or float64; all
// are accepted when integral.
func intOption(opts map[string]any, name string, def, lo, hi int) (int, error) {
	raw, ok := opts[name]
	if !ok {
		return def, nil
	}
	var v int
	switch x := raw.(type) {
	case int:
		v = x
	case int32:
		v = int(x)
	case int64:
		v = int(x)
	case uint64:
		v = int(min(x, math.MaxInt32))
	case float64:
		if x != math.Trunc(x) || math.Abs(x) > math.MaxInt32 {
			return 0, fmt.Errorf("option %s: %v is not an integer", name, x)
		}
		v = int(x)
	default:
		return 0, fmt.Errorf("option %s: got %T (%v), want an integer", name, raw, raw)
	}
	if v < lo || v > hi {
		return 0, fmt.Errorf("option %s: %d is out of range %d..%d", name, v, lo, hi)
	}
	return v, nil
}

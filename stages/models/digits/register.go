package digits

import (
	"embed"
	"fmt"
	"sync"

	"github.com/flexiflow/flexiflow/schemas"
	"github.com/flexiflow/flexiflow/stages/models"
)

// Kinds declares the six digits models as model kinds, backed by the data
// set load returns:
//
//	digits.passthrough, digits.median, digits.pca    (step "denoise")
//	digits.centroid, digits.mlp, digits.knn          (step "classify")
//
// Nothing is loaded or trained until a model of one of these kinds is
// built: a workflow that names none of them never touches the data set.
func Kinds(load func() (*Dataset, error)) []models.Kind {
	return []models.Kind{
		models.Define("digits.passthrough", "Returns each digit image unchanged: the cheapest denoiser.",
			func(_ *noOptions, _ models.Env) (models.Model, error) { return newDenoiser(passthrough), nil }),
		models.Define("digits.median", "A switching 3x3 median filter: replaces pixels far from their neighbourhood's median (stuck pixels, salt noise).",
			func(c *MedianConfig, _ models.Env) (models.Model, error) {
				return newDenoiser(switchingMedian(c.Threshold)), nil
			}),
		models.Define("digits.pca", "Projects each image onto the training set's first principal components, refitting without outlier rows: removes heavy noise, slowest denoiser.",
			func(c *PCAConfig, _ models.Env) (models.Model, error) {
				ds, err := load()
				if err != nil {
					return nil, err
				}
				b, err := ds.pcaBasis()
				if err != nil {
					return nil, err
				}
				return newDenoiser(b.projector(c.Components)), nil
			}),
		models.Define("digits.centroid", "Nearest class centroid with a softmax over distances: the cheapest classifier.",
			func(_ *noOptions, _ models.Env) (models.Model, error) {
				ds, err := load()
				if err != nil {
					return nil, err
				}
				return newClassifier(ds.centroidParams().probs), nil
			}),
		models.Define("digits.mlp", "A one-hidden-layer perceptron trained on the training split at first use.",
			func(_ *noOptions, _ models.Env) (models.Model, error) {
				ds, err := load()
				if err != nil {
					return nil, err
				}
				return newClassifier(ds.mlpParams().probs), nil
			}),
		models.Define("digits.knn", "Distance-weighted k nearest neighbours over the training split: the most robust and slowest classifier.",
			func(c *KNNConfig, _ models.Env) (models.Model, error) {
				ds, err := load()
				if err != nil {
					return nil, err
				}
				if c.K > len(ds.train) {
					return nil, fmt.Errorf("k: %d is out of range 1..%d (the training set's size)", c.K, len(ds.train))
				}
				return newClassifier(knn{train: ds.train, k: c.K}.probs), nil
			}),
	}
}

// Register adds the digits kinds to r, backed by ds.
func Register(r *models.Registry, ds *Dataset) {
	for _, k := range Kinds(func() (*Dataset, error) { return ds, nil }) {
		r.Add(k)
	}
}

// Lazy returns a loader that parses the embedded data set on first call
// and returns the same Dataset after.
func Lazy() func() (*Dataset, error) {
	var once sync.Once
	var ds *Dataset
	var err error
	return func() (*Dataset, error) {
		once.Do(func() {
			if ds, err = Load(); err != nil {
				err = fmt.Errorf("loading the digits data set: %w", err)
			}
		})
		return ds, err
	}
}

// noOptions is the config of a kind that takes no settings.
type noOptions struct{}

// MedianConfig is digits.median's config.
type MedianConfig struct {
	Threshold float64 `yaml:"threshold" default:"6" doc:"How far (in pixel levels, 0..16) a pixel must be from its neighbourhood's median to be replaced."`
}

// Check refuses a threshold outside the pixel range.
func (c *MedianConfig) Check() error {
	if !(c.Threshold >= 0 && c.Threshold <= MaxPixel) {
		return models.Problem([]any{"threshold"}, "threshold: %v is out of range 0..%g", c.Threshold, MaxPixel)
	}
	return nil
}

// PCAConfig is digits.pca's config.
type PCAConfig struct {
	Components int `yaml:"components" default:"20" doc:"How many principal components (1..64) the projection keeps."`
}

// Check refuses a component count outside 1..64.
func (c *PCAConfig) Check() error {
	if c.Components < 1 || c.Components > NumPixels {
		return models.Problem([]any{"components"}, "components: %d is out of range 1..%d", c.Components, NumPixels)
	}
	return nil
}

// KNNConfig is digits.knn's config.
type KNNConfig struct {
	K int `yaml:"k" default:"7" doc:"How many neighbours vote (1..the training set's size)."`
}

// Check refuses k below 1.
func (c *KNNConfig) Check() error {
	if c.K < 1 {
		return models.Problem([]any{"k"}, "k: %d is out of range 1..%d", c.K, NumRows-(NumRows+2)/3)
	}
	return nil
}

//go:embed schemas/*.avsc
var schemaFiles embed.FS

// AddSchemas adds the digits records' schemas (flexiflow.demo.DigitImage
// and flexiflow.demo.DigitPrediction) to r.
func AddSchemas(r *schemas.Registry) error { return r.AddFS(schemaFiles, "schemas/*.avsc") }

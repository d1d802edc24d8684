package digits

import (
	"bufio"
	"bytes"
	"compress/gzip"
	_ "embed"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
)

// digitsCSVGz is scikit-learn's copy of the UCI optical digits test set:
// one image per line, 64 pixels then the label (see data/digits.rst).
//
//go:embed data/digits.csv.gz
var digitsCSVGz []byte

const (
	// Side is the width and height of an image in pixels.
	Side = 8
	// NumPixels is the number of pixels in an image, Side*Side, row-major.
	NumPixels = Side * Side
	// NumClasses is the number of digit classes, 0..9.
	NumClasses = 10
	// MaxPixel is the largest pixel value; the smallest is 0.
	MaxPixel = 16.0
	// NumRows is the number of images in the embedded data set.
	NumRows = 1797
)

// Image is one labelled digit; Pixels are row-major, in [0, MaxPixel].
type Image struct {
	Pixels [NumPixels]float64
	Label  int
}

// Dataset is the embedded data set, split deterministically into a
// training part (row index % 3 != 0) and a test part (row index % 3 == 0).
// It also holds the trained models: each is fitted on the training part
// the first time a factory needs it and reused afterwards. A Dataset is
// safe for concurrent use.
type Dataset struct {
	train, test []Image

	pca      lazy[*pcaBasis]
	centroid lazy[*centroidParams]
	mlp      lazy[*mlpParams]
}

// lazy computes a value once, on first use.
type lazy[T any] struct {
	once sync.Once
	val  T
	err  error
}

func (l *lazy[T]) get(fit func() (T, error)) (T, error) {
	l.once.Do(func() { l.val, l.err = fit() })
	return l.val, l.err
}

// Load parses the embedded data set and splits it. It trains nothing.
func Load() (*Dataset, error) {
	zr, err := gzip.NewReader(bytes.NewReader(digitsCSVGz))
	if err != nil {
		return nil, fmt.Errorf("opening embedded digits.csv.gz: %w", err)
	}
	defer zr.Close()
	all, err := parseCSV(zr)
	if err != nil {
		return nil, fmt.Errorf("parsing embedded digits.csv.gz: %w", err)
	}
	if len(all) != NumRows {
		return nil, fmt.Errorf("embedded digits.csv.gz has %d rows, want %d", len(all), NumRows)
	}
	ds := &Dataset{}
	for i, img := range all {
		if i%3 == 0 {
			ds.test = append(ds.test, img)
		} else {
			ds.train = append(ds.train, img)
		}
	}
	return ds, nil
}

// Train returns the training images (row index % 3 != 0, 1198 of them).
// The slice is shared; do not modify it.
func (ds *Dataset) Train() []Image { return ds.train }

// Test returns the held-out images (row index % 3 == 0, 599 of them) that
// MakeBatch samples. The slice is shared; do not modify it.
func (ds *Dataset) Test() []Image { return ds.test }

func (ds *Dataset) pcaBasis() (*pcaBasis, error) {
	return ds.pca.get(func() (*pcaBasis, error) { return fitPCA(ds.train) })
}

func (ds *Dataset) centroidParams() *centroidParams {
	p, _ := ds.centroid.get(func() (*centroidParams, error) { return fitCentroid(ds.train), nil })
	return p
}

func (ds *Dataset) mlpParams() *mlpParams {
	p, _ := ds.mlp.get(func() (*mlpParams, error) { return trainMLP(ds.train, defaultMLPConfig()), nil })
	return p
}

// parseCSV reads lines of NumPixels pixel values followed by the label.
func parseCSV(r io.Reader) ([]Image, error) {
	var out []Image
	sc := bufio.NewScanner(r)
	for line := 1; sc.Scan(); line++ {
		text := strings.TrimSpace(sc.Text())
		if text == "" {
			continue
		}
		img, err := parseRow(text)
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", line, err)
		}
		out = append(out, img)
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	return out, nil
}

func parseRow(text string) (Image, error) {
	var img Image
	fields := strings.Split(text, ",")
	if len(fields) != NumPixels+1 {
		return img, fmt.Errorf("got %d fields, want %d pixels and a label", len(fields), NumPixels)
	}
	for i, f := range fields[:NumPixels] {
		v, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || v < 0 || v > MaxPixel {
			return img, fmt.Errorf("pixel %d: %q is not an integer in 0..16", i, f)
		}
		img.Pixels[i] = float64(v)
	}
	label, err := strconv.Atoi(strings.TrimSpace(fields[NumPixels]))
	if err != nil || label < 0 || label >= NumClasses {
		return img, fmt.Errorf("label %q is not a digit 0..9", fields[NumPixels])
	}
	img.Label = label
	return img, nil
}

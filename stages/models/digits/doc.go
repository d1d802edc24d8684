// Package digits holds the demo's real models and its drifting input: six
// small models over handwritten digits, trained in process at first use,
// and a schedule of corruptions that makes a different model the right
// choice in each phase of a run.
//
// # The data set
//
// The images are the test set of the UCI Optical Recognition of
// Handwritten Digits data set by E. Alpaydin and C. Kaynak (Bogazici
// University, 1998),
// https://archive.ics.uci.edu/ml/datasets/Optical+Recognition+of+Handwritten+Digits,
// in the copy scikit-learn ships as load_digits, licensed CC BY 4.0. It
// has 1797 images of 8x8 pixels, each pixel the count of inked cells in a
// 4x4 block of a 32x32 scan, so an integer 0..16, and a label 0..9. It is
// embedded as data/digits.csv.gz (64 pixels, row-major, then the label);
// its description is data/digits.rst.
//
// Load parses it and splits it by row index: rows with index%3 != 0 (1198)
// train the models, rows with index%3 == 0 (599) are the test images the
// demo stream is drawn from. Nothing trains on test images.
//
// # Records
//
// Models exchange records in goavro's native form (models.Record). An image
// (flexiflow.demo.DigitImage) is
//
//	{"id": string, "label": int32, "pixels": []any of 64 float64, row-major}
//
// and a prediction (flexiflow.demo.DigitPrediction) is
//
//	{"id": string, "label": int32, "predicted": int32, "confidence": float64}
//
// The label is ground truth carried along for evaluation: every model
// copies id and label to its output untouched and never reads the label.
// Pixels may also arrive as []float64, and as any numeric Go type inside
// []any. A record without pixels, with other than 64 of them, or with a
// non-numeric or non-finite one makes Predict fail with an error naming
// the record; models never panic on bad input.
//
// # Models
//
// Register adds six factories to a models.Registry. Their cost per batch
// of 32 records on one core, measured by TestCalibration, is in brackets.
//
// Step denoise takes images and returns images, pixels clipped to [0, 16]:
//
//   - digits.passthrough returns the image unchanged (about 0.1 ms).
//   - digits.median is a switching 3x3 median filter for stuck pixels: a
//     pixel at 0 or 16 that differs from the median of its neighbourhood
//     by more than "threshold" (default 6) is replaced by that median;
//     other pixels are kept, since a plain median filter erases the one-
//     and two-pixel strokes of an 8x8 digit (about 0.2 ms).
//   - digits.pca reconstructs the image from its first "components"
//     (default 20, which explain 89% of the training variance) principal
//     components of the training images, fitted with a gonum SVD. The
//     coefficients are a least squares fit, refitted twice without the
//     pixels it explains worst (residual above 3 robust standard
//     deviations), so hot pixels do not pull the reconstruction (about
//     0.8 ms).
//
// Step classify takes images and returns predictions. Confidence is the
// model's probability for its predicted class:
//
//   - digits.centroid picks the nearest class mean. Its probabilities are a
//     softmax over the negative squared distances to the ten means divided
//     by a temperature times the squared distance to the nearest mean, the
//     temperature fitted by maximum likelihood on the training images; so an
//     image far from every mean, faded or noisy, gets a flat answer. Test
//     accuracy on clean images 0.90 (about 0.05 ms).
//   - digits.mlp is a perceptron with one hidden layer of 32 tanh units and
//     a softmax output, trained by minibatch SGD (40 epochs, batches of 16,
//     fixed seed). It normalises contrast (the third brightest pixel of each
//     image maps to 1) and trains on copies of the images with random fading
//     and hot pixels, so faded and speckled digits do not confuse it; its
//     softmax temperature is fitted by maximum likelihood on noisy copies of
//     the training images, so its confidence drops under noise it was not
//     trained on. Clean accuracy 0.96 (about 0.15 ms).
//   - digits.knn scans all 1198 training images for the "k" (default 7)
//     nearest in Euclidean distance; confidence is the winning class's
//     share of the votes weighted by 1/(1+distance). Clean accuracy 0.985
//     (about 3.4 ms).
//
// Training all of them takes about half a second. Each Dataset trains each
// model once (sync.Once), however often and concurrently its factories run;
// training is deterministic.
//
// # Drift
//
// Schedule splits a run into three equal phases and MakeBatch draws each
// batch's images from the test split and corrupts them as its phase says
// (then clips to [0, 16]):
//
//	clean    nothing
//	speckle  ink faded to 55% (Fade 0.45), 13% of pixels stuck hot at 16
//	storm    Gaussian noise of standard deviation 8, 3% of pixels stuck hot
//
// The demo workflow's assertions are roughness(output.pixels) <=
// RoughnessMax (5.0) per record at denoise, output.confidence >=
// ConfidenceMin (0.56) per record at classify, and at least 80% of a batch
// of 32 passing at each step. Roughness is the mean absolute difference of
// consecutive pixels, row-major. With these numbers (TestCalibration, 40
// batches per phase; batch pass rate, then record accuracy in brackets,
// classifiers reading the cheapest passing denoiser's output):
//
//	          passthrough median pca   centroid     mlp          knn
//	clean     1.00        1.00   1.00  1.00 (0.89)  0.97 (0.96)  1.00 (0.99)
//	speckle   0.00        1.00   1.00  0.05 (0.85)  0.97 (0.90)  0.97 (0.90)
//	storm     0.00        0.07   1.00  0.20 (0.68)  0.17 (0.67)  0.95 (0.76)
//
// So the cheapest model that passes moves from passthrough to median to
// pca, and from centroid to mlp to knn. Clean digits are smooth enough and
// the centroid sure enough. Hot pixels make raw images rough; the median
// removes them (mean squared error against the clean image 16 instead of
// 31, and the classifiers read its output far better: mlp 0.90 instead of
// 0.68). Fading
// flattens the centroid's probabilities but not the contrast-normalised
// MLP's, which is also more accurate. Heavy noise survives the median but
// not the PCA projection (mean squared error 14 instead of 32); it leaves
// k-NN with a confident majority of neighbours far more often than the
// centroid or the MLP, and k-NN is the most accurate (0.76 against 0.68).
// One caveat: on
// storm images the classifiers read PCA's output no better than the raw
// image (k-NN 0.77 against 0.78); denoising buys a passing smoothness check
// and a cleaner image, not a better classification.
//
// A ranking by cost over pass probability (the bandit's) follows the same
// path only if an attempt's cost includes more than the model's run time:
// the centroid costs 1/60 of k-NN, so on model time alone trying it first
// in the storm, passing 20% of the time, is cheaper than going straight to
// k-NN.
package digits

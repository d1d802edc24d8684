package digits

// The demo workflow's assertion thresholds (the workflow file's
// ROUGHNESS_MAX and CONFIDENCE_MIN), calibrated against Schedule by
// TestCalibration in calibration_test.go, which logs the resulting batch
// pass rates, accuracies and costs per model and phase. A batch passes a
// step when at least 80% of its 32 records pass.
const (
	// RoughnessMax bounds roughness(output.pixels) (assert.Roughness) per record at the
	// denoise step. Clean digits have roughness 4.2 on average and stay
	// under 5.0 nine times in ten, so clean batches pass untouched; stuck
	// hot pixels or heavy noise push raw images well above it.
	RoughnessMax = 5.0
	// ConfidenceMin bounds output.confidence from below per record at the
	// classify step. It sits just under 4/7, so k-NN passes a record when
	// a (distance-weighted) majority of its 7 neighbours agree.
	ConfidenceMin = 0.56
)

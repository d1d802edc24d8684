package stream

import (
	"strconv"
	"strings"

	"github.com/twmb/franz-go/pkg/kgo"
)

// Header keys.
const (
	HeaderBatchID = "flexiflow-batch-id"
	HeaderAttempt = "flexiflow-attempt"
	HeaderTried   = "flexiflow-tried"
	HeaderError   = "flexiflow-error"
	// A dead letter whose value was too large to copy whole says so: its
	// value is left out (HeaderValue "omitted"), HeaderValueBytes gives the
	// size it had, and HeaderSource (topic/partition/offset) where the
	// original still is.
	HeaderValue      = "flexiflow-value"
	HeaderValueBytes = "flexiflow-value-bytes"
	HeaderSource     = "flexiflow-source"
	// HeaderModels, on a sink record, lists step=model for each step.
	HeaderModels = "flexiflow-models"
)

// Headers builds the routing headers; errMsg is added only when non-empty.
func Headers(batchID string, attempt int, tried []string, errMsg string) []kgo.RecordHeader {
	h := []kgo.RecordHeader{
		{Key: HeaderBatchID, Value: []byte(batchID)},
		{Key: HeaderAttempt, Value: []byte(strconv.Itoa(attempt))},
		{Key: HeaderTried, Value: []byte(strings.Join(tried, ","))},
	}
	if errMsg != "" {
		h = append(h, kgo.RecordHeader{Key: HeaderError, Value: []byte(errMsg)})
	}
	return h
}

// Header returns the value of the first header called key, or "".
func Header(r *kgo.Record, key string) string {
	for _, h := range r.Headers {
		if h.Key == key {
			return string(h.Value)
		}
	}
	return ""
}

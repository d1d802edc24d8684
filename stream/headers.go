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

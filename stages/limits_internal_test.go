package stages

import (
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"
)

// TestRefusedBatchLowersTheLimitByItsLargestRecord: the broker refuses a
// whole produce batch, so small records that shared it with a large one
// come back refused too. Only the largest may set the limit, or every later
// output to the topic would count as too large.
func TestRefusedBatchLowersTheLimitByItsLargestRecord(t *testing.T) {
	var l limits
	var r refusals
	small := &kgo.Record{Topic: "out", Value: make([]byte, 300)}
	big := &kgo.Record{Topic: "out", Value: make([]byte, 1_200_000)}
	r.add("out", size(small))
	r.add("out", size(big))
	r.add("out", size(small))
	for topic, n := range r.largest() {
		l.refused(topic, n)
	}
	if _, tooLarge := l.tooLarge(big); !tooLarge {
		t.Errorf("the refused record still fits the limit %d", l.of("out"))
	}
	if _, tooLarge := l.tooLarge(small); tooLarge {
		t.Errorf("a small record that only shared the refused batch no longer fits: limit %d", l.of("out"))
	}
	if got := l.of("other"); got != defaultMaxMessageBytes {
		t.Errorf("another topic's limit changed to %d", got)
	}
}

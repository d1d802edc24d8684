//go:build !plot

package sim

import "testing"

func TestWriteSeriesPNG(t *testing.T) {
	t.Skip("this build has no plotting; run go test -tags plot to check the PNG plot")
}

//go:build !unix

package plan

import "time"

// ProcessCPU is unknown here: plan validate reports no CPU figures.
func ProcessCPU() time.Duration { return 0 }

// MachineCPU is unknown here: the broker's CPU is not calibrated.
func MachineCPU() (time.Duration, bool) { return 0, false }

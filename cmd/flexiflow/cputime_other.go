//go:build !unix

package main

import "time"

// cpuTime is unknown here: plan validate reports no CPU figures.
func cpuTime() time.Duration { return 0 }

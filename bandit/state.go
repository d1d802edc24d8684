package bandit

import (
	"encoding/json"
	"fmt"
)

// Stateful is a policy whose learned state can be saved and restored, so a
// restarted stage resumes with what it had learned instead of its prior.
type Stateful interface {
	// MarshalState encodes everything the policy has learned, including its
	// random source, so that a restored policy makes the same next decision.
	MarshalState() ([]byte, error)
	// RestoreState replaces the policy's state with a saved one.
	RestoreState([]byte) error
}

// thompsonState is Thompson's saved form. Version guards future changes.
type thompsonState struct {
	Version int        `json:"version"`
	Arms    []armState `json:"arms"`
	RNG     []byte     `json:"rng"`
}

type armState struct {
	Pass    float64 `json:"pass"`
	Fail    float64 `json:"fail"`
	N       float64 `json:"n"`
	SumLog  float64 `json:"sum_log"`
	SumLog2 float64 `json:"sum_log2"`
}

// MarshalState implements Stateful.
func (t *Thompson) MarshalState() ([]byte, error) {
	rng, err := t.src.MarshalBinary()
	if err != nil {
		return nil, err
	}
	s := thompsonState{Version: 1, RNG: rng}
	for _, a := range t.arms {
		s.Arms = append(s.Arms, armState{a.pass, a.fail, a.n, a.sumLog, a.sumLog2})
	}
	return json.Marshal(s)
}

// RestoreState implements Stateful. A state saved for a different number of
// models is refused: the workflow changed, and the policy starts afresh.
func (t *Thompson) RestoreState(b []byte) error {
	var s thompsonState
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("thompson: saved state is not valid: %w", err)
	}
	if s.Version != 1 {
		return fmt.Errorf("thompson: saved state has version %d, this build reads version 1", s.Version)
	}
	if len(s.Arms) != len(t.arms) {
		return fmt.Errorf("thompson: saved state has %d models, the step has %d", len(s.Arms), len(t.arms))
	}
	if err := t.src.UnmarshalBinary(s.RNG); err != nil {
		return fmt.Errorf("thompson: saved random state: %w", err)
	}
	for i, a := range s.Arms {
		t.arms[i] = arm{a.Pass, a.Fail, a.N, a.SumLog, a.SumLog2}
	}
	return nil
}

// flexiflowState is FlexiFlow's saved form: Thompson's state plus what was
// learned about each model's downstream effects.
type flexiflowState struct {
	Version  int             `json:"version"`
	Thompson json.RawMessage `json:"thompson"`
	Down     [][3]float64    `json:"downstream"` // per model: n, cost, delivered
	// Recent is per model the drift detector's recent cost, delivered
	// share, count, departure and squared departure; absent in states
	// saved before it.
	Recent [][5]float64 `json:"recent,omitempty"`
	// Local is per model the pass-drift detector's recent pass rate and
	// count; absent in states saved before it.
	Local [][2]float64 `json:"local,omitempty"`
}

// MarshalState implements Stateful.
func (f *FlexiFlow) MarshalState() ([]byte, error) {
	t, err := f.Thompson.MarshalState()
	if err != nil {
		return nil, err
	}
	s := flexiflowState{Version: 1, Thompson: t}
	for _, d := range f.down {
		s.Down = append(s.Down, [3]float64{d.n, d.cost, d.delivered})
		s.Recent = append(s.Recent, [5]float64{d.recentCost, d.recentDelivered, d.recentN, d.dev, d.devSq})
	}
	for _, l := range f.local {
		s.Local = append(s.Local, [2]float64{l.recent, l.n})
	}
	return json.Marshal(s)
}

// RestoreState implements Stateful.
func (f *FlexiFlow) RestoreState(b []byte) error {
	var s flexiflowState
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("flexiflow: saved state is not valid: %w", err)
	}
	if s.Version != 1 || len(s.Down) != len(f.down) {
		return fmt.Errorf("flexiflow: saved state (version %d, %d models) does not fit this step (version 1, %d models)", s.Version, len(s.Down), len(f.down))
	}
	if err := f.Thompson.RestoreState(s.Thompson); err != nil {
		return err
	}
	for i, d := range s.Down {
		f.down[i] = downArm{n: d[0], cost: d[1], delivered: d[2]}
		if len(s.Recent) == len(s.Down) {
			r := s.Recent[i]
			f.down[i].recentCost, f.down[i].recentDelivered, f.down[i].recentN, f.down[i].dev, f.down[i].devSq = r[0], r[1], r[2], r[3], r[4]
		}
		f.local[i] = localDrift{}
		if len(s.Local) == len(s.Down) {
			f.local[i] = localDrift{recent: s.Local[i][0], n: s.Local[i][1]}
		}
	}
	f.dirty = true
	return nil
}

package main

import (
	"sync/atomic"

	"github.com/flexiflow/flexiflow/schemas"
	"github.com/flexiflow/flexiflow/stages/models"
	"github.com/flexiflow/flexiflow/stages/models/celmodel"
	"github.com/flexiflow/flexiflow/stages/models/digits"
	"github.com/flexiflow/flexiflow/stages/models/kserve"
	"github.com/flexiflow/flexiflow/stages/models/simsleep"
)

// builtins is what the flexiflow binary ships for workflows to name: its
// model kinds and the record schemas those kinds read and write. Adding a
// kind to the binary is one line here.
type builtins struct {
	kinds   *models.Registry
	schemas *schemas.Registry
	// digits loads the digits data set the first time a digits model is
	// built (or the demo producer needs it); loadedDigits says whether
	// that happened.
	digits       func() (*digits.Dataset, error)
	loadedDigits *atomic.Bool
}

func newBuiltins() (*builtins, error) {
	loaded := new(atomic.Bool)
	lazy := digits.Lazy()
	load := func() (*digits.Dataset, error) { loaded.Store(true); return lazy() }
	kinds := models.NewRegistry(kserve.Kind(), celmodel.Kind(), simsleep.Kind())
	for _, k := range digits.Kinds(load) {
		kinds.Add(k)
	}
	sreg, err := schemas.NewRegistry()
	if err != nil {
		return nil, err
	}
	if err := digits.AddSchemas(sreg); err != nil {
		return nil, err
	}
	return &builtins{kinds: kinds, schemas: sreg, digits: load, loadedDigits: loaded}, nil
}

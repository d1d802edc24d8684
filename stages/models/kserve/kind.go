package kserve

import "github.com/flexiflow/flexiflow/stages/models"

// KindName is what a workflow's `kind:` says for a served model.
const KindName = "kserve-v2"

// Kind declares kserve-v2 models for a models.Registry.
func Kind() models.Kind {
	return models.Define(KindName,
		"A model behind any Open Inference Protocol (KServe v2) server: MLServer, Triton, KServe, TorchServe. "+
			"Each batch is one inference request; record fields map to input tensors and output tensors back to fields. "+
			"Connection failures and HTTP 502/503/504 or gRPC UNAVAILABLE are retryable; answers never are.",
		func(cfg *Config, env models.Env) (models.Model, error) {
			cfg.Name = env.Name
			return New(*cfg, WithLogger(env.Log))
		})
}

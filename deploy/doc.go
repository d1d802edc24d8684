// Package deploy holds FlexiFlow's deployment files and the tests that keep
// them honest without a container engine or a cluster:
//
//   - ../Dockerfile: one small static image, non-root, for every role;
//   - ../docker-compose.yml: Kafka (KRaft), ClickHouse, topic and schema
//     setup, one service per step of the demo workflow, the trace sink and
//     the demo producer, loaded here with the compose specification's own
//     loader;
//   - k8s/: a kustomize base and an example overlay (one Deployment per
//     step, the sink, the workflow ConfigMap, probes, PodDisruptionBudgets,
//     an optional KEDA ScaledObject), decoded here strictly into the
//     Kubernetes API types;
//   - kafka/kafka.sh: a real Apache Kafka broker for tests, optionally with a
//     SASL_SSL (SCRAM over TLS) listener.
//
// The tests build the real binary and check every command a deployment
// runs against its subcommands and flags.
package deploy

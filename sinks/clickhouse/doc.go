// Package clickhouse keeps a workflow's attempt traces in ClickHouse and
// answers the questions users ask of them: is the input drifting, when did
// each step switch models and what did it cost, what happened to a batch.
//
// Data enters from the <workflow>.traces topic: a Sink is a consumer group
// (read_committed) that decodes each trace, converts it to a Row (FromTrace)
// and hands rows in batches to an Inserter, flushing on size and on time.
// Offsets are committed only after ClickHouse acknowledged the rows, so
// delivery is at least once; replays collapse because the traces table is a
// ReplacingMergeTree keyed on the attempt id and every query reads it with
// FINAL. When ClickHouse is down or slow, the sink pauses consumption,
// retries with backoff and resumes; the stages never wait for it, since
// traces wait in their topic.
//
// Data leaves through the shipped SQL, embedded from sql/: the versioned
// migrations (Migrate applies them and records each in
// flexiflow_schema_version; CheckSchema refuses a schema older than the
// binary), and the named, parameterised queries in sql/queries (drift,
// switches, trace, and the helpers that resolve batch windows and list
// steps), run through an Engine with ClickHouse query parameters, never by
// building SQL from user input. Results come back as a Result, which writes
// itself as a table, JSON or CSV.
//
// Native (clickhouse-go/v2) implements Engine and Inserter against a
// server. The tests drive the same SQL through chDB, the ClickHouse engine
// in process (deploy/clickhouse/chdb_run.py), and check its answers against
// the drift statistics (Drift, in drift.go) and switch timelines computed
// here in Go from the raw traces.
package clickhouse

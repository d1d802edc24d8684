-- 0001: attempt traces and their per-minute aggregates.
--
-- traces holds one row per attempt (schemas/trace.avsc). The sink delivers
-- at least once, so a replayed trace may be inserted twice: the table is a
-- ReplacingMergeTree whose sorting key ends in attempt_id, and a replay of
-- the same Kafka record carries the same workflow, step and ts, so both
-- copies share one key and collapse on merge. Queries read with FINAL so
-- they never count a copy that has not been merged yet. Identical insert
-- blocks retried after a lost acknowledgement are also dropped at insert
-- time (non_replicated_deduplication_window with the sink's dedup token).
--
-- Sorted by (workflow, step, ts): every shipped query filters on a workflow
-- and step and scans a time range. batch_id has a bloom filter for
-- `flexiflow trace`. Rows expire after 90 days (change the TTL with ALTER
-- TABLE traces MODIFY TTL ...).
CREATE TABLE IF NOT EXISTS traces
(
    attempt_id        String,
    batch_id          String,
    workflow          LowCardinality(String),
    step              LowCardinality(String),
    model             LowCardinality(String),
    rank_position     UInt8,
    attempt           UInt16,
    tried             Array(LowCardinality(String)),
    ts                DateTime64(6, 'UTC'),
    latency_us        UInt64,
    records           UInt32,
    records_passed    UInt32,
    verdict           LowCardinality(String),
    error             String,
    outcome           LowCardinality(String),
    leader            LowCardinality(String),
    assertion_names   Array(LowCardinality(String)),
    assertion_failed  Array(UInt32),
    estimate_models   Array(LowCardinality(String)),
    estimate_pass     Array(Float64),
    estimate_cost_ms  Array(Float64),
    estimate_score    Array(Float64),
    estimate_pulls    Array(Float64),
    feature_names     Array(LowCardinality(String)),
    feature_count     Array(UInt64),
    feature_mean      Array(Float64),
    feature_variance  Array(Float64),
    feature_min       Array(Float64),
    feature_max       Array(Float64),
    -- Per feature the 5th, 25th, 50th, 75th and 95th percentiles.
    feature_quantiles Array(Array(Float64)),
    inserted_at       DateTime64(3, 'UTC') DEFAULT now64(3),
    INDEX batch_idx batch_id TYPE bloom_filter(0.01) GRANULARITY 4
)
ENGINE = ReplacingMergeTree(inserted_at)
PARTITION BY toYYYYMM(ts)
ORDER BY (workflow, step, ts, attempt_id)
TTL toDateTime(ts) + INTERVAL 90 DAY
SETTINGS non_replicated_deduplication_window = 1000;

-- Per workflow, step, model and minute: attempts, passes, records and
-- latency quantiles. Attempts and passes count distinct attempt ids, so a
-- replayed insert does not inflate them; the latency quantiles and record
-- sums may count a replayed row twice (the sink replays only after a crash
-- between inserting and committing its offsets).
CREATE TABLE IF NOT EXISTS attempts_by_minute
(
    workflow       LowCardinality(String),
    step           LowCardinality(String),
    model          LowCardinality(String),
    minute         DateTime('UTC'),
    attempts       AggregateFunction(uniqExact, String),
    passes         AggregateFunction(uniqExactIf, String, UInt8),
    first_attempts AggregateFunction(uniqExactIf, String, UInt8),
    first_passes   AggregateFunction(uniqExactIf, String, UInt8),
    records        SimpleAggregateFunction(sum, UInt64),
    records_passed SimpleAggregateFunction(sum, UInt64),
    latency_us     AggregateFunction(quantiles(0.5, 0.9, 0.99), UInt64)
)
ENGINE = AggregatingMergeTree
PARTITION BY toYYYYMM(minute)
ORDER BY (workflow, step, model, minute)
TTL minute + INTERVAL 400 DAY;

CREATE MATERIALIZED VIEW IF NOT EXISTS attempts_by_minute_mv TO attempts_by_minute AS
SELECT
    workflow,
    step,
    model,
    toStartOfMinute(ts) AS minute,
    uniqExactState(attempt_id) AS attempts,
    uniqExactIfState(attempt_id, toUInt8(verdict = 'pass')) AS passes,
    uniqExactIfState(attempt_id, toUInt8(attempt = 1)) AS first_attempts,
    uniqExactIfState(attempt_id, toUInt8(attempt = 1 AND verdict = 'pass')) AS first_passes,
    sum(toUInt64(records)) AS records,
    sum(toUInt64(records_passed)) AS records_passed,
    quantilesState(0.5, 0.9, 0.99)(latency_us) AS latency_us
FROM traces
WHERE model != ''
GROUP BY workflow, step, model, minute;

-- Per workflow, step, model, minute and input feature: the summaries of the
-- batches the step's models saw (first attempts only, so each batch counts
-- once per step): values, their weighted mean, extremes, and the averaged
-- per-batch quantiles. Weights are Float64: avgWeighted with an integer
-- weight truncates fractional values. value_count may count a replayed
-- row twice, like the record sums above; batches counts distinct ids.
CREATE TABLE IF NOT EXISTS features_by_minute
(
    workflow  LowCardinality(String),
    step      LowCardinality(String),
    model     LowCardinality(String),
    minute    DateTime('UTC'),
    feature   LowCardinality(String),
    batches   AggregateFunction(uniqExact, String),
    value_count SimpleAggregateFunction(sum, UInt64),
    mean      AggregateFunction(avgWeighted, Float64, Float64),
    variance  AggregateFunction(avgWeighted, Float64, Float64),
    min       SimpleAggregateFunction(min, Float64),
    max       SimpleAggregateFunction(max, Float64),
    quantiles AggregateFunction(avgForEach, Array(Float64))
)
ENGINE = AggregatingMergeTree
PARTITION BY toYYYYMM(minute)
ORDER BY (workflow, step, model, feature, minute)
TTL minute + INTERVAL 400 DAY;

CREATE MATERIALIZED VIEW IF NOT EXISTS features_by_minute_mv TO features_by_minute AS
SELECT
    workflow,
    step,
    model,
    toStartOfMinute(ts) AS minute,
    feature,
    uniqExactState(batch_id) AS batches,
    sum(n) AS value_count,
    avgWeightedState(m, toFloat64(n)) AS mean,
    avgWeightedState(v, toFloat64(n)) AS variance,
    min(lo) AS min,
    max(hi) AS max,
    avgForEachState(q) AS quantiles
FROM traces
ARRAY JOIN
    feature_names AS feature,
    feature_count AS n,
    feature_mean AS m,
    feature_variance AS v,
    feature_min AS lo,
    feature_max AS hi,
    feature_quantiles AS q
WHERE attempt = 1 AND model != ''
GROUP BY workflow, step, model, minute, feature;

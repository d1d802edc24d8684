-- The schema version table: one row per applied migration. `flexiflow
-- migrate` creates it first, the sink and the queries read max(version) and
-- refuse to run against a schema older than the binary expects.
CREATE TABLE IF NOT EXISTS flexiflow_schema_version
(
    version    UInt32,
    name       String,
    applied_at DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree(applied_at)
ORDER BY version;

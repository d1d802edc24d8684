-- profile: what flexiflow plan profiles a workflow's models from, one row
-- per attempt since a time: the batch, step and model, the attempt number,
-- when it ran (microseconds since the epoch), how long it took on how many
-- records, and its verdict.
--
-- Parameters: workflow, since.
SELECT
    batch_id,
    step,
    model,
    attempt,
    toUnixTimestamp64Micro(ts) AS ts_us,
    latency_us,
    records,
    verdict
FROM traces FINAL
WHERE workflow = {workflow:String}
  AND ts >= {since:DateTime64(6, 'UTC')}
ORDER BY step, ts, attempt_id

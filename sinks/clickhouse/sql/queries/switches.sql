-- switches: the timeline of each step's top-ranked model (the traces'
-- `leader`: the model with the best estimate at decision time), one row per
-- period a model led, with how the step did while it led and before.
--
-- A step with `context: upstream` ranks its models once per upstream model
-- (the traces' `context`) and has a leader per context: its timelines are
-- kept apart, one per (step, context), so a batch from another upstream
-- model is no switch. A step without contexts has one timeline, context ''.
--
-- Attempts are ordered by (ts, attempt_id) per (step, context). A period
-- starts at the first attempt whose leader differs from the previous
-- attempt's; the first period of a timeline has from_model = '' and no
-- "before" figures (NaN). For
-- the period before and the period after each switch: attempts (model
-- calls), first-try pass rate (share of the step's first attempts that
-- passed), pass rate over all attempts, mean model latency per attempt,
-- and model time per batch the step worked on (what serving a batch cost,
-- retries included), in milliseconds. Rows with at >= since are returned; periods are
-- computed over the whole history so the "before" figures are complete.
--
-- Parameters: workflow, step ('' = every step), since.
WITH
    ordered AS
    (
        SELECT
            step,
            context,
            ts,
            attempt_id,
            batch_id,
            leader,
            attempt,
            model,
            verdict,
            latency_us,
            lagInFrame(leader, 1, '') OVER (PARTITION BY step, context ORDER BY ts, attempt_id
                ROWS BETWEEN UNBOUNDED PRECEDING AND UNBOUNDED FOLLOWING) AS prev_leader
        FROM traces FINAL
        WHERE workflow = {workflow:String}
          AND ({step:String} = '' OR step = {step:String})
          AND leader != ''
    ),
    numbered AS
    (
        SELECT
            *,
            sum(toUInt64(leader != prev_leader)) OVER (PARTITION BY step, context ORDER BY ts, attempt_id
                ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS period
        FROM ordered
    ),
    periods AS
    (
        SELECT
            step,
            context,
            period,
            any(leader) AS leader,
            min(ts) AS started,
            argMin(batch_id, (ts, attempt_id)) AS first_batch,
            countIf(model != '') AS attempts,
            countIf(model != '' AND attempt = 1) AS first_attempts,
            if(first_attempts = 0, nan, countIf(model != '' AND attempt = 1 AND verdict = 'pass') / first_attempts) AS first_try_pass_rate,
            if(attempts = 0, nan, countIf(model != '' AND verdict = 'pass') / attempts) AS pass_rate,
            if(attempts = 0, nan, avgIf(latency_us, model != '') / 1000) AS latency_ms,
            uniqExactIf(batch_id, model != '') AS batches,
            if(batches = 0, nan, sumIf(latency_us, model != '') / 1000 / batches) AS model_ms_per_batch
        FROM numbered
        GROUP BY step, context, period
    )
SELECT
    cur.step AS step,
    cur.context AS context,
    cur.started AS at,
    cur.first_batch AS batch_id,
    prev.leader AS from_model,
    cur.leader AS to_model,
    prev.attempts AS attempts_before,
    if(cur.period = 1, nan, prev.first_try_pass_rate) AS first_try_pass_before,
    if(cur.period = 1, nan, prev.pass_rate) AS pass_rate_before,
    if(cur.period = 1, nan, prev.latency_ms) AS latency_ms_before,
    if(cur.period = 1, nan, prev.model_ms_per_batch) AS model_ms_per_batch_before,
    cur.attempts AS attempts_after,
    cur.first_try_pass_rate AS first_try_pass_after,
    cur.pass_rate AS pass_rate_after,
    cur.latency_ms AS latency_ms_after,
    cur.model_ms_per_batch AS model_ms_per_batch_after
FROM periods AS cur
LEFT JOIN periods AS prev ON prev.step = cur.step AND prev.context = cur.context AND prev.period + 1 = cur.period
WHERE cur.started >= {since:DateTime64(6, 'UTC')}
ORDER BY step, context, at

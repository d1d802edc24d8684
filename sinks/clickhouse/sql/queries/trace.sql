-- trace: one batch's journey through a workflow, one row per attempt in the
-- order they happened: the step, which model ran at what rank (and the
-- leader of the context it ranked under, for `context: upstream`), its verdict
-- and where the batch went next.
--
-- Parameters: workflow, batch_id.
SELECT
    ts,
    step,
    attempt,
    model,
    rank_position,
    leader,
    context,
    latency_us / 1000 AS latency_ms,
    records,
    records_passed,
    verdict,
    outcome,
    arrayStringConcat(tried, ',') AS tried,
    arrayStringConcat(arrayFilter(x -> x != '', arrayMap((a, f) -> if(f > 0, concat(a, '=', toString(f)), ''), assertion_names, assertion_failed)), ',') AS failed_assertions,
    error
FROM traces FINAL
WHERE workflow = {workflow:String}
  AND batch_id = {batch_id:String}
ORDER BY ts, attempt_id

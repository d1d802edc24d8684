-- batch_window: the start time of the n-th batch (0-based, in arrival
-- order) a step saw, so a window of batch ordinals ("batches:0-400") can be
-- turned into the time range [start of batch a, start of batch b) the other
-- queries take. Returns no row when the step saw n batches or fewer.
--
-- Parameters: workflow, step, n.
SELECT
    min(ts) AS started,
    batch_id
FROM traces FINAL
WHERE workflow = {workflow:String}
  AND step = {step:String}
  AND model != ''
GROUP BY batch_id
ORDER BY started, batch_id
LIMIT 1 OFFSET {n:UInt64}

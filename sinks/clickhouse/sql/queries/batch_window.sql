-- batch_window: the start times of the batches a step saw with the given
-- ordinals (0-based, in arrival order), so windows of batch ordinals
-- ("batches:0-400") can be turned into the time ranges [start of batch a,
-- start of batch b) the other queries take. One scan answers every
-- ordinal; an ordinal the step has not reached (it saw n batches or
-- fewer) has no row.
--
-- Parameters: workflow, step, n (the ordinals, Array(UInt64)).
SELECT
    n,
    started,
    batch_id
FROM
(
    SELECT
        started,
        batch_id,
        toUInt64(row_number() OVER (ORDER BY started, batch_id) - 1) AS n
    FROM
    (
        SELECT
            min(ts) AS started,
            batch_id
        FROM traces FINAL
        WHERE workflow = {workflow:String}
          AND step = {step:String}
          AND model != ''
        GROUP BY batch_id
    )
)
WHERE has({n:Array(UInt64)}, n)
ORDER BY n

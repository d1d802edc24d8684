-- steps: the workflows and steps the traces table holds, with their batch
-- and attempt counts and time span, so the CLI can say which names exist
-- when one is misspelt.
--
-- Parameters: workflow ('' = every workflow).
SELECT
    workflow,
    step,
    uniqExact(batch_id) AS batches,
    count() AS attempts,
    min(ts) AS first_at,
    max(ts) AS last_at
FROM traces FINAL
WHERE {workflow:String} = '' OR workflow = {workflow:String}
GROUP BY workflow, step
ORDER BY workflow, step

-- drift: per input feature of one step, how far the recent window's input
-- distribution has moved from the reference window's.
--
-- Each trace carries, per feature, the batch's count, min, max and its 5th,
-- 25th, 50th, 75th and 95th percentiles. A batch's distribution is read as
-- the piecewise-linear CDF through (min, 0), (p5, .05), (p25, .25),
-- (p50, .5), (p75, .75), (p95, .95), (max, 1) (a vertical step where knots
-- coincide). A window's CDF is the count-weighted mixture of its batches'.
-- Bins are cut at the reference window's averaged percentiles (distinct
-- values): (-inf, e1], (e1, e2], ..., (ek, +inf). On those bins:
--   psi = sum (q - p) ln(q / p), p and q floored at 1e-4 (p reference, q recent)
--   js  = Jensen-Shannon divergence, log base 2 (0 = same, 1 = disjoint)
--   ks  = max |F_ref(e) - F_recent(e)| over the bin edges (a lower bound of
--         the Kolmogorov-Smirnov statistic)
-- Each batch counts once per step (its first attempt); windows are
-- [from, to) on the attempt's start time.
--
-- Parameters: workflow, step, ref_from, ref_to, recent_from, recent_to,
-- threshold (psi above it is flagged).
WITH
    [0., 0.05, 0.25, 0.5, 0.75, 0.95, 1.] AS probs,
    batch_rows AS
    (
        SELECT
            batch_id,
            (ts >= {ref_from:DateTime64(6, 'UTC')} AND ts < {ref_to:DateTime64(6, 'UTC')}) AS in_ref,
            (ts >= {recent_from:DateTime64(6, 'UTC')} AND ts < {recent_to:DateTime64(6, 'UTC')}) AS in_recent,
            feature,
            n,
            mu,
            arrayConcat([lo], q, [hi]) AS knots
        FROM traces FINAL
        ARRAY JOIN
            feature_names AS feature,
            feature_count AS n,
            feature_mean AS mu,
            feature_min AS lo,
            feature_max AS hi,
            feature_quantiles AS q
        WHERE workflow = {workflow:String}
          AND step = {step:String}
          AND attempt = 1
          AND model != ''
          AND n > 0
          AND length(q) = 5
          AND ((ts >= {ref_from:DateTime64(6, 'UTC')} AND ts < {ref_to:DateTime64(6, 'UTC')})
            OR (ts >= {recent_from:DateTime64(6, 'UTC')} AND ts < {recent_to:DateTime64(6, 'UTC')}))
    ),
    edges AS
    (
        SELECT
            feature,
            arraySort(arrayDistinct(avgForEachIf(arraySlice(knots, 2, 5), in_ref))) AS e
        FROM batch_rows
        GROUP BY feature
        HAVING countIf(in_ref) > 0 AND countIf(in_recent) > 0
    ),
    cdfs AS
    (
        SELECT
            batch_rows.feature AS feature,
            in_ref,
            in_recent,
            n,
            mu,
            arrayMap(x -> arraySum(arrayMap(j ->
                (probs[j + 1] - probs[j]) * if(knots[j + 1] > knots[j],
                    least(greatest((x - knots[j]) / (knots[j + 1] - knots[j]), 0.), 1.),
                    if(x >= knots[j], 1., 0.)),
                range(1, 7))), edges.e) AS F
        FROM batch_rows
        INNER JOIN edges ON batch_rows.feature = edges.feature
    ),
    windows AS
    (
        SELECT
            feature,
            countIf(in_ref) AS ref_batches,
            countIf(in_recent) AS recent_batches,
            sumIf(n * mu, in_ref) / sumIf(n, in_ref) AS ref_mean,
            sumIf(n * mu, in_recent) / sumIf(n, in_recent) AS recent_mean,
            arrayMap(v -> v / sumIf(n, in_ref), sumForEachIf(arrayMap(v -> v * n, F), in_ref)) AS Fr,
            arrayMap(v -> v / sumIf(n, in_recent), sumForEachIf(arrayMap(v -> v * n, F), in_recent)) AS Fq
        FROM cdfs
        GROUP BY feature
    ),
    bins AS
    (
        SELECT
            feature, ref_batches, recent_batches, ref_mean, recent_mean, Fr, Fq,
            arrayConcat([Fr[1]], arrayMap(i -> Fr[i + 1] - Fr[i], range(1, length(Fr))), [1. - Fr[length(Fr)]]) AS p,
            arrayConcat([Fq[1]], arrayMap(i -> Fq[i + 1] - Fq[i], range(1, length(Fq))), [1. - Fq[length(Fq)]]) AS q
        FROM windows
    )
SELECT
    feature,
    ref_batches,
    recent_batches,
    ref_mean,
    recent_mean,
    arraySum(arrayMap((a, b) -> (greatest(b, 1e-4) - greatest(a, 1e-4)) * log(greatest(b, 1e-4) / greatest(a, 1e-4)), p, q)) AS psi,
    arrayMax(arrayMap((a, b) -> abs(a - b), Fr, Fq)) AS ks,
    arraySum(arrayMap((a, b) ->
        0.5 * if(a > 0, a * log2(2 * a / (a + b)), 0.) + 0.5 * if(b > 0, b * log2(2 * b / (a + b)), 0.), p, q)) AS js,
    toBool(psi > {threshold:Float64}) AS drifted
FROM bins
ORDER BY psi DESC, feature

-- 0002: the context a step ranked under.
--
-- A step with `context: upstream` keeps one ranking per model that served
-- the previous step, and a trace's leader is the top-ranked model of that
-- context. Without the context, a timeline of leaders mixes the contexts
-- and shows a "switch" whenever consecutive batches came from different
-- upstream models. Rows written before this migration read context = ''
-- (one context, as their steps had).
ALTER TABLE traces ADD COLUMN IF NOT EXISTS context LowCardinality(String) DEFAULT '' AFTER leader;

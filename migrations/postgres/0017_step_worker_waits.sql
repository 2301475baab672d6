-- How long a step waited for a worker to take it (postgres; identical in meaning to the other
-- backend): the longest time any attempt spent between being scheduled and starting, in
-- milliseconds. A step that waits long was ready before any worker had a free activity
-- slot, e.g. a deployment whose max_parallel exceeds the slots of the workers polling.
ALTER TABLE run_steps ADD COLUMN longest_wait_ms BIGINT;

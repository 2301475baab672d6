-- Step logs (postgres). Keep column names and meaning identical to migrations/sqlite.
-- What a step printed (terraform's -json messages, helm's output), line by line, per
-- attempt. Secrets are masked before a line is written.

CREATE TABLE step_log_lines (
    run_id    TEXT NOT NULL REFERENCES workflow_runs(id),
    step_key  TEXT NOT NULL,
    attempt   INTEGER NOT NULL,
    seq       INTEGER NOT NULL,
    at        TEXT NOT NULL,
    level     TEXT NOT NULL,
    line      TEXT NOT NULL,
    PRIMARY KEY (run_id, step_key, attempt, seq)
);

-- Scores computed outside (by ML engineers' models), imported from S3. One current version per model,
-- swapped in atomically; user_id '' marks a score for everyone (an item-level model).

CREATE TABLE model_scores (
    model     text NOT NULL,
    user_id   text NOT NULL,
    item_id   text NOT NULL,
    score     double precision NOT NULL,
    PRIMARY KEY (model, user_id, item_id)
);
CREATE INDEX model_scores_rank_idx ON model_scores (model, user_id, score DESC);

CREATE TABLE model_versions (
    model        text PRIMARY KEY,
    source       text NOT NULL,
    modified_at  timestamptz NOT NULL,
    rows         bigint NOT NULL,
    imported_at  timestamptz NOT NULL DEFAULT now()
);

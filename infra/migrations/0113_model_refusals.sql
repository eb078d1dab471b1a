-- The file of each model that the import last refused (a bad row, header or encoding; feedcore.scoring.models),
-- so that later runs do not download and refuse it again: a model's newest file is imported only when it is
-- neither the imported version (model_versions) nor the refused one. No row content is kept (a refusal's
-- message, which may quote a user id, goes to the log only).
CREATE TABLE model_refusals (
    model        text PRIMARY KEY,
    source       text NOT NULL,
    modified_at  timestamptz NOT NULL,
    refused_at   timestamptz NOT NULL DEFAULT now()
);

-- The recompute's role imports the models (grant_function_privileges, migration 0061, knows no such table; a
-- grant stays with the table).
GRANT SELECT, INSERT, UPDATE ON model_refusals TO feed_recompute_scores;

-- The erasure route (DELETE /v1/users/{user_id}) deletes a user's feed records, snapshots and model scores by
-- user_id, which no index led with: each erasure scanned the three tables whole under a request's statement
-- timeout, and `feeds` keeps every served feed for attribution, so erasure failed once the table grew.
-- (A plain CREATE INDEX: migrations run in a transaction; on a large `feeds` it holds the feed's recording
-- back while it builds, and the feed answers degraded meanwhile.)
CREATE INDEX feeds_user_idx ON feeds (user_id);
CREATE INDEX feed_snapshots_user_idx ON feed_snapshots (user_id);
CREATE INDEX model_scores_user_idx ON model_scores (user_id);

-- Users erased by DELETE /v1/users/{user_id}, with the time of their latest erasure. A model score file
-- imported later loses the user's rows when it was written before that erasure, or when the user has no
-- events since it (feedcore.db.models). Holds the user id alone: no events, scores or profile.
CREATE TABLE user_erasures (
    user_id   text PRIMARY KEY,
    erased_at timestamptz NOT NULL DEFAULT now()
);

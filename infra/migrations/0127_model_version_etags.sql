-- A model file's version is its S3 key, LastModified and ETag (feedcore.scoring.models): S3's LastModified has whole
-- seconds, so a file written again under its key within the same second kept both, and the import took it for the
-- version it had imported (or refused) and never read it. The import now records the ETag the listing gave for the
-- version it imported or refused, and reads the file only while the key still holds that ETag (If-Match).
--
-- Rows from before this migration have no ETag (NULL), and S3 cannot be asked from here which one they had. A NULL
-- stands for the key and time it names, whatever the ETag: the file the listing now shows under them is taken for
-- the version recorded. Taking NULL for "another version" instead would make the first run after the deploy read
-- every model's file again (and refuse each refused one again) for nothing. What the choice keeps of the old defect
-- is only what already happened: a file written again within the second of a version recorded without an ETag, and
-- after the import read it, stays unread until a newer file comes (write it again to import it: a later
-- LastModified is a new version). Only the code before this one records versions without an ETag, and any write
-- after its last listing of a key, in a later second, is a new version anyway. The import records the ETag with
-- every version it imports or refuses; the code before this one, which runs until the deploy updates the functions
-- (or after a rollback), names its columns: it records a new model's version without an ETag, and leaves a row's
-- ETag as it was when it replaces the row's version (then the next run imports that version once more: needless,
-- not wrong).
--
-- Adding a column with no default rewrites nothing, but takes each table's exclusive lock, which waits for a running
-- import's transaction (it reads model_versions while it reads its file and copies it in: up to most of a run). Past
-- 5 s of waiting the migration fails (the deploy rolls back and can run again) rather than eat the deploy's time.
SET LOCAL lock_timeout = '5s';
ALTER TABLE model_versions ADD COLUMN etag text;
ALTER TABLE model_refusals ADD COLUMN etag text;

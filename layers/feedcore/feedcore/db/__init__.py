"""Data access: the only package that holds SQL or touches the database connection."""

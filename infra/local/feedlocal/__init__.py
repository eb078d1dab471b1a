"""Local runtime: embedded PostgreSQL, demo data, the local HTTP server and the feedctl command."""

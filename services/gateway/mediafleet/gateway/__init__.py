"""Gateway: the public HTTP API (auth, media upload, jobs, search, SSE progress)."""

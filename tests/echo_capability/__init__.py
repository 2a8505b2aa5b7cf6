"""A test-only capability with no model: the job path (gateway -> job_manager -> worker ->
results, dependencies, cache, webhooks) tested apart from any real engine."""

"""job_manager: turns jobs into tasks on RQ queues, collects results, retries and reaps abandoned tasks."""

"""mediafleet media_metadata capability: where and when a file was made (task ``metadata``)."""

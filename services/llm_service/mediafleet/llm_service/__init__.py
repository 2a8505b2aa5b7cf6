"""mediafleet llm_service capability."""

"""LLM engines of llm_service (one module per library)."""

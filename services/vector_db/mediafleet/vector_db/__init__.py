"""mediafleet vector_db: durable FAISS collections over HTTP (see store.py)."""

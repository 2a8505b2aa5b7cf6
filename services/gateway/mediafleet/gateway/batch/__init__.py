"""Batch API: many API calls in one request, run in process through the gateway's own routes."""

"""Shared package of the mediafleet services.

Settings base, logging, the error envelope, health/metrics, auth token checks,
media probing, the engine protocol, result schemas, queue names and the SQL store.
"""

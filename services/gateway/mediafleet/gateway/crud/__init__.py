"""The gateway's queries, one module per resource (users, jobs, media, people): keyword-only
functions taking the request's session, as the FastAPI full-stack template's ``crud.py``.
Routes call these and hold no SQL of their own."""

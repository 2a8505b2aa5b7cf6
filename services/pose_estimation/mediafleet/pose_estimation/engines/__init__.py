"""The ultralytics engine (one per runtime); ultralytics is imported inside ``load()``."""

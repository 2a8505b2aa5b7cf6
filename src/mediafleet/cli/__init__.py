"""The ``mediafleet`` command: embedded analysis and search, or a client of a running gateway."""

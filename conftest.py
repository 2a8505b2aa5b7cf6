"""Root of the test suite: the fixtures of tests/conftest.py for every test directory
(``tests/`` and each service's ``services/<name>/tests/``), and the test-only ``echo``
capability registered for the whole session."""

import os

os.environ.setdefault("MEDIAFLEET_EXTRA_CAPABILITIES", "tests.echo_capability.contract:CAPABILITY")

from tests.conftest import *  # noqa: E402, F403

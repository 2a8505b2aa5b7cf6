"""Root of the test suite: the fixtures of tests/conftest.py for every test directory
(``tests/`` and each service's ``services/<name>/tests/``), and the test-only ``echo``
capability registered for the whole session."""

import os

os.environ.setdefault("MEDIAFLEET_EXTRA_CAPABILITIES", "tests.echo_capability.contract:CAPABILITY")

from tests.conftest import *  # noqa: F403


def pytest_report_header(config) -> list[str]:
    """Where Redis and PostgreSQL come from, and their versions (said once, at the top)."""
    from tests.servers import image_versions, server_mode

    try:
        mode, why = server_mode()
        return [f"test servers: {mode} ({why})", f"server versions: {image_versions(mode)}"]
    except Exception as exc:  # the fixtures will fail with the same reason, per test
        return [f"test servers: unavailable: {exc}"]

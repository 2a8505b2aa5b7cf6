"""Fixtures of the job_manager tests: each module defines ``core`` (the databases it runs on)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from mediafleet.common.settings import CoreSettings
from mediafleet.gateway.app import create_app
from mediafleet.gateway.settings import AdminSettings, GatewaySettings
from tests.api_helpers import FIRST_PASSWORD, admin_token


@pytest.fixture
def api(core: CoreSettings) -> Iterator[tuple[TestClient, str]]:
    """The gateway on ``core`` under TestClient, and the first admin's access token."""
    settings = GatewaySettings(
        core=core,
        secret_key=SecretStr("job-manager-test-secret-0123456789abc"),
        admin=AdminSettings(password=SecretStr(FIRST_PASSWORD)),
    )
    with TestClient(create_app(settings)) as client:
        yield client, admin_token(client)

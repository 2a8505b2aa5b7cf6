"""A client generated from the gateway's OpenAPI document by openapi-python-client (a generator
nobody here wrote) builds without a warning and drives the main routes, typed (issue 26.3).

The generator's own option ``content_type_overrides`` maps the media types of our binary
routes (``image/jpeg``, ``image/*``, ...) to ``application/octet-stream``, the one binary type
it knows; their schemas are declared binary (``format: binary``) so it reads them as files.
"""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from mediafleet.common.settings import CoreSettings
from mediafleet.gateway.app import create_app
from mediafleet.gateway.settings import AdminSettings, GatewaySettings
from tests.api_helpers import ADMIN, FIRST_PASSWORD, NEW_PASSWORD
from tests.conftest import sample

CONFIG = """\
content_type_overrides:
  image/jpeg: application/octet-stream
  image/*: application/octet-stream
  audio/*: application/octet-stream
  video/*: application/octet-stream
"""


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The package ``mfclient`` generated from the app's OpenAPI document; its import name."""
    root = tmp_path_factory.mktemp("generated")
    settings = GatewaySettings(
        core=CoreSettings(database_url=f"sqlite:///{root / 'spec.db'}", media_dir=root / "media"),
        secret_key=SecretStr("generated-client-secret-0123456789abcdef"),
    )
    (root / "openapi.json").write_text(json.dumps(create_app(settings).openapi()))
    (root / "config.yaml").write_text(CONFIG)
    tool = Path(sys.executable).with_name("openapi-python-client")
    done = subprocess.run(
        [str(tool), "generate", "--path", str(root / "openapi.json"), "--meta", "none",
         "--output-path", str(root / "mfclient"), "--config", str(root / "config.yaml")],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    # every route generated: the tool names what it leaves out in a warning
    assert "Warning" not in done.stdout and "WARNING" not in done.stdout, done.stdout
    sys.path.insert(0, str(root))
    try:
        yield "mfclient"
    finally:
        sys.path.remove(str(root))
        for name in [m for m in sys.modules if m == "mfclient" or m.startswith("mfclient.")]:
            del sys.modules[name]


def op(package: str, module: str) -> ModuleType:
    """The generated module of one operation (named after its FastAPI operation id)."""
    return importlib.import_module(f"{package}.api.{module}")


def test_the_generated_client_signs_in_uploads_runs_and_reads(
    generated: str, redis_url: str, tmp_path: Path
) -> None:
    client_mod = importlib.import_module(f"{generated}.client")
    models = importlib.import_module(f"{generated}.models")
    types = importlib.import_module(f"{generated}.types")
    settings = GatewaySettings(
        core=CoreSettings(
            database_url=f"sqlite:///{tmp_path / 'gateway.db'}",
            redis_url=redis_url,
            media_dir=tmp_path / "media",
        ),
        secret_key=SecretStr("generated-client-secret-0123456789abcdef"),
        admin=AdminSettings(username=ADMIN, password=SecretStr(FIRST_PASSWORD)),
    )
    with TestClient(create_app(settings)) as http:
        anonymous = client_mod.Client(base_url="http://testserver")
        anonymous.set_httpx_client(http)
        first = op(generated, "auth.login_v1_auth_token_post").sync(
            client=anonymous, body=models.BodyLoginV1AuthTokenPost(username=ADMIN, password=FIRST_PASSWORD)
        )
        assert isinstance(first, models.TokenPair) and first.must_change_password is True

        def signed_in(token: str):
            http.headers["Authorization"] = f"Bearer {token}"
            c = client_mod.AuthenticatedClient(base_url="http://testserver", token=token)
            c.set_httpx_client(http)
            return c

        changed = op(generated, "auth.change_password_v1_auth_password_post").sync(
            client=signed_in(first.access_token),
            body=models.PasswordChange(current_password=FIRST_PASSWORD, new_password=NEW_PASSWORD),
        )
        assert isinstance(changed, models.TokenPair) and changed.must_change_password is False
        api = signed_in(changed.access_token)

        image = sample("english.png").read_bytes()
        media = op(generated, "media.upload_media_v1_media_post").sync(
            client=api,
            body=models.BodyUploadMediaV1MediaPost(file=types.File(payload=image, file_name="english.png")),
        )
        assert isinstance(media, models.MediaPublic) and media.kind == "image" and media.mime == "image/png"

        original = op(generated, "media.media_original_v1_media_media_id_original_get").sync(
            media.media_id, client=api
        )
        assert isinstance(original, types.File) and original.payload.read() == image
        thumb = op(generated, "media.media_thumbnail_v1_media_media_id_thumbnail_get").sync(
            media.media_id, client=api
        )
        assert isinstance(thumb, types.File) and thumb.payload.read()[:3] == b"\xff\xd8\xff"  # a JPEG

        tasks = op(generated, "tasks.list_tasks_v1_tasks_get").sync(client=api)
        assert isinstance(tasks, models.TasksPublic) and "echo" in {t.name for t in tasks.data}
        created = op(generated, "jobs.create_job_v1_jobs_post").sync(
            client=api, body=models.JobCreate(media_id=media.media_id, tasks=["echo"])
        )
        assert isinstance(created, models.JobCreated)
        job = op(generated, "jobs.get_job_v1_jobs_job_id_get").sync(created.job_id, client=api)
        assert isinstance(job, models.JobPublic) and job.status == models.JobStatus.QUEUED
        assert [t.name for t in job.tasks] == ["echo"]
        listed = op(generated, "jobs.list_jobs_v1_jobs_get").sync(client=api)
        assert isinstance(listed, models.JobsPublic) and listed.count == 1
        canceled = op(generated, "jobs.cancel_job_v1_jobs_job_id_delete").sync(created.job_id, client=api)
        assert isinstance(canceled, models.JobPublic) and canceled.status == models.JobStatus.CANCELED
        events = op(generated, "jobs.job_events_v1_jobs_job_id_events_get").sync(created.job_id, client=api)
        assert isinstance(events, str) and events.startswith("event: job")

        missing = op(generated, "jobs.get_job_v1_jobs_job_id_get").sync("0" * 32, client=api)
        assert isinstance(missing, models.ErrorEnvelope) and missing.error.code == "job_not_found"

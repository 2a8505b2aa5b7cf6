"""Write the gateway's OpenAPI schema where the web UI's typed client is generated from.

    python scripts/export-openapi.py [--check]

Writes ``services/ui/src/api/openapi.json`` (sorted keys, stable). ``--check`` writes nothing
and exits 1 when the file differs from the gateway's schema (then run ``make ui-api``).
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

from pydantic import SecretStr

ROOT = Path(__file__).resolve().parents[1]
TARGET = ROOT / "services/ui/src/api/openapi.json"


def gateway_openapi() -> str:
    """The schema as JSON text; builds the app without starting it (no database, no Redis)."""
    from mediafleet.common.settings import CoreSettings
    from mediafleet.gateway.app import create_app
    from mediafleet.gateway.settings import GatewaySettings

    with tempfile.TemporaryDirectory() as tmp:
        settings = GatewaySettings(
            core=CoreSettings(database_url=f"sqlite:///{tmp}/openapi.db", media_dir=Path(tmp) / "media"),
            secret_key=SecretStr("openapi-export-only-" + "0" * 32),
        )
        spec = create_app(settings).openapi()
    return json.dumps(spec, indent=1, sort_keys=True, ensure_ascii=False) + "\n"


def main() -> int:
    text = gateway_openapi()
    if "--check" in sys.argv[1:]:
        if not TARGET.is_file() or TARGET.read_text() != text:
            print(
                f"{TARGET.relative_to(ROOT)} differs from the gateway's OpenAPI: run make ui-api",
                file=sys.stderr,
            )
            return 1
        print(f"{TARGET.relative_to(ROOT)} matches the gateway's OpenAPI")
        return 0
    TARGET.write_text(text)
    print(f"wrote {TARGET.relative_to(ROOT)} ({len(text)} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

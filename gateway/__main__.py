"""`python -m gateway`: the gateway under uvicorn, configured from the environment (gateway.settings)."""

from __future__ import annotations

import sys

from pydantic import ValidationError


def main() -> None:
    from gateway.server import run
    from gateway.settings import Settings

    try:
        settings = Settings()
    except ValidationError as exc:
        sys.exit(f"invalid gateway settings:\n{exc}")
    try:
        run(settings)
    except OSError as exc:  # a port already taken, an address not on this host
        sys.exit(f"gateway cannot listen: {exc}")


if __name__ == "__main__":
    main()

"""`python -m gateway`: the gateway under uvicorn, configured from the environment (gateway.settings).

One worker per process on purpose: Kubernetes scales pods (HPA), and one process per container keeps the
memory budget, the metrics and the shared gRPC channel simple.
"""

from __future__ import annotations

import sys

import uvicorn
from pydantic import ValidationError


def main() -> None:
    try:
        from gateway.main import app
    except ValidationError as exc:
        sys.exit(f"invalid gateway settings:\n{exc}")
    settings = app.state.settings
    try:
        import uvloop  # noqa: F401 (only probing: uvicorn picks it up by name)

        loop = "uvloop"
    except ImportError:
        loop = "asyncio"
    uvicorn.run(
        app,
        host=settings.bind_host,
        port=settings.bind_port,
        workers=1,
        loop=loop,
        http="httptools",
        # Logging is configured by gateway.log (JSON lines); the gateway writes its own access line.
        log_config=None,
        access_log=False,
        # X-Forwarded-For/-Proto are honoured only from FORWARDED_ALLOW_IPS (default: loopback, i.e. none in
        # a pod). An NLB forwards TCP and adds no such headers; an L7 proxy in front would be listed there.
        proxy_headers=True,
        forwarded_allow_ips=settings.forwarded_allow_ips,
        # SIGTERM: stop accepting, let in-flight requests finish for this long, then exit.
        timeout_graceful_shutdown=settings.shutdown_timeout_s,
        server_header=False,
    )


if __name__ == "__main__":
    main()

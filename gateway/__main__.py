import signal
import sys

import uvicorn

from gateway.config import GatewaySettings
from gateway.metrics import shared_by_workers


def main() -> None:
    settings = GatewaySettings()
    # Uvicorn finishes in-flight requests on SIGTERM, then raises the signal again, which
    # by default ends the process with status -15; a stop it completed exits 0 instead.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    with shared_by_workers(settings.gateway_workers):
        uvicorn.run(
            "gateway.main:app",
            host=settings.gateway_host,
            port=settings.gateway_port,
            workers=settings.gateway_workers,
            loop="uvloop",
            http="httptools",
            log_config=None,
            access_log=False,
            proxy_headers=False,
            timeout_graceful_shutdown=int(settings.shutdown_grace),
        )


if __name__ == "__main__":
    main()

"""ASGI entry point: `uvicorn gateway.main:app`."""

from common.logging import configure_logging
from common.tracing import setup_tracing
from gateway.app import create_app
from gateway.config import GatewaySettings

settings = GatewaySettings()
configure_logging("gateway", settings.log_level)
setup_tracing("gateway", settings)
app = create_app(settings)

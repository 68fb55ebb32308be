"""jobwire.gateway: the REST API (Litestar). It keeps no state: jobs and nodes come from the database,
events and logs from JetStream, and every change is a command to the scheduler.
"""

from .app import create_app
from .server import serve
from .settings import GatewaySettings, gateway_settings

__all__ = ["GatewaySettings", "create_app", "gateway_settings", "serve"]

"""The server: listeners, connections, shutdown. Trio lives here (and in sse/websocket/testing)."""

from .connection import HTTPConnection
from .options import ServeOptions
from .serve import Server, serve
from .state import ServerState

__all__ = ["HTTPConnection", "ServeOptions", "Server", "ServerState", "serve"]

"""ServeOptions.fd (serve on an inherited socket) and ServeOptions.reuse_port."""

from __future__ import annotations

import socket

import httpx
import pytest
from helpers import RunServer

from trio_h3 import H3, H3Event, ServeOptions


def app() -> H3:
    application = H3()

    @application.get("/")
    async def index(event: H3Event) -> str:
        return "hi"

    return application


async def test_serves_on_an_inherited_listening_socket(running_server: RunServer) -> None:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    port = sock.getsockname()[1]
    fd = sock.detach()  # the server owns it from here, as a worker does
    async with running_server(app(), fd=fd, port=1) as server:
        assert server.port == port  # where the socket is, not the port option
        async with httpx.AsyncClient() as client:
            assert (await client.get(f"http://127.0.0.1:{port}/")).text == "hi"


async def test_reuse_port_lets_two_servers_share_a_port(running_server: RunServer) -> None:
    async with running_server(app(), reuse_port=True) as first:
        async with running_server(app(), reuse_port=True, port=first.port) as second:
            assert second.port == first.port
            async with httpx.AsyncClient() as client:
                assert (await client.get(first.url)).text == "hi"


async def test_a_port_taken_without_reuse_port_is_a_clear_error(
    running_server: RunServer,
) -> None:
    async with running_server(app(), reuse_port=True) as first:
        with pytest.RaisesGroup(
            pytest.RaisesExc(OSError, match="cannot listen on 127.0.0.1"), flatten_subgroups=True
        ):
            async with running_server(app(), port=first.port):
                pass


def test_fd_must_be_a_descriptor_number() -> None:
    with pytest.raises(ValueError, match="fd"):
        ServeOptions(fd=-1)


async def test_a_bad_fd_is_a_clear_error(running_server: RunServer) -> None:
    with open(__file__) as not_a_socket:
        with pytest.RaisesGroup(
            pytest.RaisesExc(OSError, match="cannot listen on fd"), flatten_subgroups=True
        ):
            async with running_server(app(), fd=not_a_socket.fileno()):
                pass

#!/bin/sh
# Autobahn|Testsuite cases (via kosoku) against examples/websocket_echo.py; see run.py.
set -e
cd "$(dirname "$0")/../.."
exec python tests/autobahn/run.py "$@"

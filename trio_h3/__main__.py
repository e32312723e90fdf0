"""``python -m trio_h3 run module:app`` — the same as the ``trio-h3`` command."""

from .cli import main

if __name__ == "__main__":
    raise SystemExit(main())

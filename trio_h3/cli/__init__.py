"""The ``trio-h3`` command: ``trio-h3 run MODULE:ATTR [options]``, uvicorn's way.

- :mod:`.main`: the parser and the run, from flags to exit status;
- :mod:`.flags`: one flag per ServeOptions field, made from the dataclass;
- :mod:`.loader`: ``MODULE:ATTR`` to the app, and the errors that say why not;
- :mod:`.logs`: the default logging, or ``--log-config``;
- :mod:`.envfile`: ``--env-file``;
- :mod:`.reload`: ``--reload``'s supervisor (it never imports the app);
- :mod:`.docs`: docs/cli.md's table of every option, generated from the above.

Nothing here imports Trio until the server starts.
"""

from __future__ import annotations

from .main import main

__all__ = ["main"]

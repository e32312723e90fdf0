"""Validating what a request carries with any callable (pydantic, msgspec, a function). Pure.

``event.json(validate=fn)``, ``event.form(validate=fn)``, ``event.validated_query(fn)``
and ``event.validated_params(fn)`` all go through :func:`validate_sync` /
:func:`validate_async`, which follow h3's ``validateData`` (``readValidatedBody``,
``getValidatedQuery``): ``fn(value)`` may return the validated value (a model, a
dataclass...), ``True`` or ``None`` to keep ``value`` as it is, or ``False`` to refuse it.

Whatever ``fn`` raises (``ValueError``, ``TypeError``, ``KeyError``, pydantic's or
msgspec's ``ValidationError``...) is the client's fault, not the server's: a **400** with
the JSON error body, the issues in ``data``. No validation library is imported here;
pydantic is recognised by duck typing (an ``errors()`` method returning a list), and
every other error becomes one issue with its message, so ``data`` is always a list of
objects with at least a ``msg``. An :class:`~trio_h3.HTTPError` the validator raises is
its own answer and passes through unchanged.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable
from typing import Any

from .errors import HTTPError

__all__: list[str] = []

logger = logging.getLogger("trio_h3")


def issues(exc: BaseException) -> list[Any]:
    """The issues an exception reports: pydantic's ``errors()`` list, else its message."""
    errors = getattr(exc, "errors", None)
    if callable(errors):
        try:
            # pydantic v2: the documentation URL of each error type is noise for a client.
            found = errors(include_url=False)
        except TypeError:
            try:
                found = errors()
            except Exception:
                found = None
        except Exception:
            found = None
        if isinstance(found, list):
            return found
    message = str(exc) or type(exc).__name__
    if isinstance(exc, KeyError) and exc.args:
        # str(KeyError("n")) is "'n'": say what is missing.
        message = f"missing {exc.args[0]!r}"
    return [{"msg": message}]


def invalid(what: str, exc: Exception) -> HTTPError:
    """The 400 for ``exc`` raised while validating ``what`` ("body", "query"...)."""
    # Debug only: a refused input is the client's doing, and logging it louder would let
    # any client fill the logs.
    logger.debug("validation of the request %s failed", what, exc_info=exc)
    return HTTPError(400, f"Invalid request {what}", data=issues(exc))


def _outcome(value: Any, result: Any, what: str) -> Any:
    if result is False:
        raise HTTPError(400, f"Invalid request {what}", data=[{"msg": "refused by the validator"}])
    if result is True or result is None:
        return value
    return result


def validate_sync(fn: Callable[[Any], Any], value: Any, what: str) -> Any:
    """``fn(value)`` for a synchronous validator (query, params); see the module docstring."""
    try:
        result = fn(value)
    except HTTPError:
        raise
    except Exception as exc:
        raise invalid(what, exc) from exc
    if inspect.isawaitable(result):
        close = getattr(result, "close", None)
        if callable(close):
            close()  # no "coroutine was never awaited" warning on top of the error
        raise TypeError(
            f"the {what} validator returned an awaitable: it must be synchronous here "
            "(event.json() and event.form() take async validators)"
        )
    return _outcome(value, result, what)


async def validate_async(fn: Callable[[Any], Any], value: Any, what: str) -> Any:
    """``fn(value)``, awaited if it returns an awaitable (body, form)."""
    try:
        result = fn(value)
        if inspect.isawaitable(result):
            result = await result
    except HTTPError:
        raise
    except Exception as exc:
        raise invalid(what, exc) from exc
    return _outcome(value, result, what)

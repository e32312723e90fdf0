"""Validated input: event.json(validate=), event.form(validate=), event.validated_query(),
event.validated_params(), with real pydantic and msgspec, a dataclass and plain functions.

Whatever a validator raises is a 400 with the issues in ``data``, never a 500.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import msgspec
import pydantic
import pytest
import trio
from trio.testing import MockClock

from trio_h3 import H3, FormData, H3Event, HTTPError, QueryParams
from trio_h3.testing import TestClient


class Item(pydantic.BaseModel):
    name: str
    price: float = pydantic.Field(gt=0)


class Page(pydantic.BaseModel):
    n: int = 1
    size: int = pydantic.Field(default=20, le=100)


class Spec(msgspec.Struct):
    name: str
    count: int


@dataclasses.dataclass
class Login:
    user: str
    password: str


def positive_id(params: dict[str, str]) -> int:
    value = int(params["id"])  # ValueError on "abc"
    if value <= 0:
        raise ValueError("id must be positive")
    return value


def app() -> H3:
    application = H3()

    @application.post("/pydantic")
    async def with_pydantic(event: H3Event) -> dict[str, Any]:
        item = await event.json(validate=Item.model_validate)
        return {"name": item.name, "price": item.price}

    @application.post("/msgspec")
    async def with_msgspec(event: H3Event) -> dict[str, Any]:
        spec = await event.json(validate=lambda data: msgspec.convert(data, Spec))
        return {"name": spec.name, "count": spec.count}

    @application.post("/function")
    async def with_function(event: H3Event) -> Any:
        def check(data: Any) -> bool:
            return isinstance(data, list)

        return await event.json(validate=check)

    @application.post("/checker")
    async def with_checker(event: H3Event) -> Any:
        def check(data: Any) -> None:
            if "id" not in data:
                raise KeyError("id")

        return await event.json(validate=check)

    @application.post("/async")
    async def with_async(event: H3Event) -> dict[str, Any]:
        async def check(data: Any) -> dict[str, Any]:
            await trio.sleep(1)
            if data.get("ok") is not True:
                raise TypeError("ok must be true")
            return {"checked": data}

        return await event.json(validate=check)

    @application.post("/teapot")
    async def teapot(event: H3Event) -> Any:
        def check(data: Any) -> Any:
            raise HTTPError(418, "A validator may answer for itself")

        return await event.json(validate=check)

    @application.post("/login")
    async def login(event: H3Event) -> dict[str, str]:
        def to_login(form: FormData) -> Login:
            user, password = form["user"], form["password"]
            if not isinstance(user, str) or not isinstance(password, str):
                raise TypeError("user and password are text fields")
            return Login(user, password)

        credentials = await event.form(validate=to_login)
        return {"user": credentials.user}

    @application.post("/form-pydantic")
    async def form_pydantic(event: H3Event) -> dict[str, Any]:
        item = await event.form(validate=lambda form: Item.model_validate(form.to_dict()))
        return {"name": item.name, "price": item.price}

    @application.get("/items")
    async def items(event: H3Event) -> dict[str, int]:
        page = event.validated_query(lambda q: Page.model_validate(q.to_dict()))
        return {"n": page.n, "size": page.size}

    @application.get("/search")
    async def search(event: H3Event) -> dict[str, Any]:
        event.validated_query(lambda q: "q" in q)
        return {"q": event.query["q"]}

    @application.get("/users/:id")
    async def user(event: H3Event) -> dict[str, int]:
        return {"id": event.validated_params(positive_id)}

    @application.get("/async-query")
    async def async_query(event: H3Event) -> Any:
        async def check(query: QueryParams) -> bool:
            return True

        return event.validated_query(check)

    return application


async def test_pydantic_models_and_their_errors(autojump_clock: MockClock) -> None:
    async with TestClient(app()) as client:
        r = await client.post("/pydantic", json={"name": "pen", "price": 1.5})
        assert r.json() == {"name": "pen", "price": 1.5}
        r = await client.post("/pydantic", json={"price": -1})
        assert r.status == 400
        body = r.json()
        assert body["message"] == "Invalid request body"
        # pydantic's errors() list, as it is (without the documentation links).
        assert [(issue["type"], issue["loc"]) for issue in body["data"]] == [
            ("missing", ["name"]),
            ("greater_than", ["price"]),
        ]
        assert all("url" not in issue and "msg" in issue for issue in body["data"])
        # Not JSON at all: the JSON error, before any validation.
        r = await client.post(
            "/pydantic", content=b"{", headers={"content-type": "application/json"}
        )
        assert (r.status, r.json()["message"]) == (400, "Invalid JSON body")


async def test_msgspec_errors(autojump_clock: MockClock) -> None:
    async with TestClient(app()) as client:
        r = await client.post("/msgspec", json={"name": "bolt", "count": 3})
        assert r.json() == {"name": "bolt", "count": 3}
        r = await client.post("/msgspec", json={"name": "bolt", "count": "three"})
        assert r.status == 400
        assert r.json()["data"] == [{"msg": "Expected `int`, got `str` - at `$.count`"}]
        r = await client.post("/msgspec", json={"name": "bolt"})
        assert r.status == 400
        assert r.json()["data"] == [{"msg": "Object missing required field `count`"}]


async def test_plain_functions_return_raise_true_false_or_none(autojump_clock: MockClock) -> None:
    async with TestClient(app()) as client:
        # True keeps the value; False refuses it.
        assert (await client.post("/function", json=[1, 2])).json() == [1, 2]
        r = await client.post("/function", json={"a": 1})
        assert (r.status, r.json()["data"]) == (400, [{"msg": "refused by the validator"}])
        # None keeps it; a KeyError says what is missing.
        assert (await client.post("/checker", json={"id": 1})).json() == {"id": 1}
        r = await client.post("/checker", json={})
        assert (r.status, r.json()["data"]) == (400, [{"msg": "missing 'id'"}])
        # An HTTPError is the validator's own answer.
        r = await client.post("/teapot", json={})
        assert (r.status, r.json()["message"]) == (418, "A validator may answer for itself")


async def test_async_validators_are_awaited(autojump_clock: MockClock) -> None:
    async with TestClient(app()) as client:
        r = await client.post("/async", json={"ok": True})
        assert r.json() == {"checked": {"ok": True}}
        r = await client.post("/async", json={"ok": False})
        assert (r.status, r.json()["data"]) == (400, [{"msg": "ok must be true"}])


async def test_form_validation(autojump_clock: MockClock) -> None:
    async with TestClient(app()) as client:
        r = await client.post("/login", data={"user": "ada", "password": "secret"})
        assert r.json() == {"user": "ada"}
        r = await client.post("/login", data={"user": "ada"})
        assert (r.status, r.json()["message"]) == (400, "Invalid request form")
        r = await client.post("/login", data={"user": "ada"}, files={"password": b"file"})
        assert r.json()["data"] == [{"msg": "user and password are text fields"}]
        r = await client.post("/form-pydantic", data={"name": "pen", "price": "2.5"})
        assert r.json() == {"name": "pen", "price": 2.5}
        r = await client.post("/form-pydantic", data={"name": "pen", "price": "free"})
        assert r.status == 400 and r.json()["data"][0]["loc"] == ["price"]


async def test_validated_query_and_params(autojump_clock: MockClock) -> None:
    async with TestClient(app()) as client:
        assert (await client.get("/items?n=3")).json() == {"n": 3, "size": 20}
        r = await client.get("/items?n=x&size=500")
        assert (r.status, r.json()["message"]) == (400, "Invalid request query")
        assert [issue["loc"] for issue in r.json()["data"]] == [["n"], ["size"]]
        assert (await client.get("/search?q=trio")).json() == {"q": "trio"}
        assert (await client.get("/search")).status == 400
        assert (await client.get("/users/7")).json() == {"id": 7}
        r = await client.get("/users/abc")
        assert (r.status, r.json()["message"]) == (400, "Invalid request params")
        assert r.json()["data"][0]["msg"].startswith("invalid literal for int()")
        r = await client.get("/users/-1")
        assert r.json()["data"] == [{"msg": "id must be positive"}]


async def test_an_async_validator_where_a_sync_one_is_needed_is_a_bug(
    autojump_clock: MockClock,
) -> None:
    async with TestClient(app()) as client:
        # The server's fault, not the client's: a 500 (and the log says why).
        assert (await client.get("/async-query")).status == 500


class ListErrors(Exception):
    """An error with a pydantic-like errors() that takes no arguments."""

    def errors(self) -> list[dict[str, str]]:
        return [{"loc": "x", "msg": "custom"}]


class BrokenErrors(Exception):
    def errors(self, **kwargs: Any) -> list[Any]:
        raise RuntimeError("errors() itself fails")


class NotAList(Exception):
    def errors(self, **kwargs: Any) -> str:
        return "not a list"


class Silent(Exception):
    pass


async def test_issues_from_any_exception(autojump_clock: MockClock) -> None:
    cases: list[tuple[Exception, list[dict[str, str]]]] = [
        (ListErrors("ignored"), [{"loc": "x", "msg": "custom"}]),
        (BrokenErrors("the message"), [{"msg": "the message"}]),
        (NotAList("the message"), [{"msg": "the message"}]),
        (Silent(), [{"msg": "Silent"}]),
    ]
    application = H3()

    @application.post("/:case")
    async def case(event: H3Event) -> Any:
        def fail(data: Any) -> Any:
            raise cases[int(event.params["case"])][0]

        return await event.json(validate=fail)

    async with TestClient(application) as client:
        for index, (_, issues) in enumerate(cases):
            r = await client.post(f"/{index}", json={})
            assert (r.status, r.json()["data"]) == (400, issues)


async def test_an_event_without_a_connection_reads_an_empty_body() -> None:
    urlencoded = H3Event("POST", b"/", [(b"content-type", b"application/x-www-form-urlencoded")])
    assert await urlencoded.form() == FormData()
    multipart = H3Event("POST", b"/", [(b"content-type", b"multipart/form-data; boundary=x")])
    with pytest.raises(RuntimeError, match="served by a connection"):
        await multipart.form()

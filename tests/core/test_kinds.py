"""Backend kinds as plugins: registered through a hook, each checking its own table."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from devpulse import (
    Chunk,
    ConfigError,
    Decision,
    Image,
    Message,
    Request,
    Response,
    Side,
    UnsupportedRequest,
    Usage,
    config_from_mapping,
    hookimpl,
    make_plugin_manager,
)
from devpulse.core.config import parse_table
from devpulse.core.kinds import BackendSpec
from devpulse.core.types import replay
from tests.support import router_with


@dataclass(frozen=True, slots=True)
class EchoSettings:
    prefix: str = "echo: "


class Echo:
    """A kind's object: answers with the prompt, streamed word by word."""

    def __init__(self, spec: BackendSpec) -> None:
        self.name = spec.name
        self.side = spec.config.side
        self.prefix = parse_table(EchoSettings, spec.options, spec.key).prefix

    def complete(self, request: Request, decision: Decision) -> Response:
        *_, last = self.stream(request, decision)
        assert last.response is not None
        return last.response

    def stream(self, request: Request, decision: Decision) -> Iterator[Chunk]:
        text = self.prefix + request.messages[-1].text
        usage = Usage(input_tokens=1, output_tokens=len(text.split()))
        yield from replay(Response(text, decision.model, self.name, self.side, usage, 0.0))


class EchoKind:
    @hookimpl
    def register_backend_kinds(self, register: Any) -> None:
        register("echo", Echo)


def echo_config(**table: Any) -> dict[str, Any]:
    return {
        "local": {"backend": "mirror", "model": "m"},
        "backends": {"mirror": {"side": "local", "kind": "echo", **table}},
        "preflight": {"enabled": False},
        "ledger": {"enabled": False},
    }


def test_a_registered_kind_answers_through_the_router() -> None:
    router = router_with(echo_config(prefix="> "), plugins=[EchoKind()])
    answer = router.invoke("hello there")
    assert (answer.text, answer.backend, answer.side) == ("> hello there", "mirror", Side.LOCAL)
    assert [c.text for c in router.stream("hi") if c.type == "text_delta"] == ["> hi"]


def test_an_unknown_kind_is_one_line_naming_the_registered_kinds() -> None:
    config = config_from_mapping(echo_config())
    with pytest.raises(ConfigError) as info:
        make_plugin_manager(config, entry_points=False)
    assert str(info.value) == (
        "config: backends.mirror.kind: unknown kind 'echo' "
        "(registered kinds: anthropic, ollama, openai_compat)"
    )


@pytest.mark.parametrize(
    ("backends", "message"),
    [
        ({"mirror": {"prefix": 3}}, "backends.mirror.prefix: expected a string, got an integer"),
        ({"mirror": {"colour": "red"}}, "backends.mirror.colour: unknown key (expected one of"),
        (
            {"llama_server": {"keep_alive": "5m"}},
            "backends.llama_server.keep_alive: unknown key (expected one of api_key_env, base_url)",
        ),
        ({"ollama": {"keep_alive": 5}}, "backends.ollama.keep_alive: expected a string"),
        ({"anthropic": {"api_key_env": ["A"]}}, "backends.anthropic.api_key_env: expected a"),
        ({"mirror": {"kind": ""}}, "backends.mirror.kind: give a kind, not an empty one"),
    ],
)
def test_each_kind_checks_its_own_table_by_dotted_key(backends: dict, message: str) -> None:
    user = echo_config()
    for name, table in backends.items():
        user["backends"].setdefault(name, {}).update(table)
    with pytest.raises(ConfigError) as info:
        make_plugin_manager(config_from_mapping(user), entry_points=False, extra=[EchoKind()])
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_a_broken_factory_is_a_config_error_not_a_crash() -> None:
    class Broken:
        @hookimpl
        def register_backend_kinds(self, register: Any) -> None:
            register("echo", lambda spec: 1 / 0)

    class Hollow:
        @hookimpl
        def register_backend_kinds(self, register: Any) -> None:
            register("echo", lambda spec: object())

    config = config_from_mapping(echo_config())
    with pytest.raises(ConfigError, match="kind 'echo' failed to build: division by zero"):
        make_plugin_manager(config, entry_points=False, extra=[Broken()])
    with pytest.raises(ConfigError, match=r"built a object, which has no complete\(\)"):
        make_plugin_manager(config, entry_points=False, extra=[Hollow()])


def test_a_later_plugin_replaces_a_bundled_kind() -> None:
    class Mine(Echo):
        def __init__(self, spec: BackendSpec) -> None:
            self.name, self.side, self.prefix = spec.name, spec.config.side, "mine: "

    class MyAnthropic:
        @hookimpl
        def register_backend_kinds(self, register: Any) -> None:
            register("anthropic", Mine)

    router = router_with({"ledger": {"enabled": False}}, plugins=[MyAnthropic()])
    request = Request.from_prompt("plan", max_tokens=5)
    decision = Decision(Side.CLOUD, "anthropic", "claude-sonnet-4-6")
    answer = router.pm.hook.dispatch(request=request, decision=decision)
    assert answer.text == "mine: plan"


def test_a_plugin_answering_for_a_backend_still_wins_over_its_kind() -> None:
    class Override:
        @hookimpl
        def dispatch(self, request: Request, decision: Decision) -> Response | None:
            usage = Usage(0, 0)
            return Response("override", decision.model, decision.backend, decision.side, usage, 0)

    router = router_with(echo_config(), plugins=[EchoKind(), Override()])
    assert router.invoke("x").text == "override"


def test_a_kind_without_images_or_model_hosting_says_so() -> None:
    router = router_with(echo_config(), plugins=[EchoKind()])
    pictured = Request(messages=(Message("user", "see", images=(Image("image/png", "AA=="),)),))
    with pytest.raises(UnsupportedRequest, match="'mirror' does not accept images"):
        router.pm.hook.dispatch(request=pictured, decision=Decision(Side.LOCAL, "mirror", "m"))
    assert router.pm.hook.loaded_models(backend="mirror") is None
    assert router.pm.hook.unload_model(backend="mirror", model="m") is None


def test_the_kinds_are_listed_with_the_plugin_that_registers_them() -> None:
    from devpulse.core.plugins import plugin_listing  # noqa: PLC0415

    router = router_with(echo_config(), plugins=[EchoKind()])
    listing = {p["name"]: p for p in plugin_listing(router.pm)}
    assert listing["devpulse.backend_kinds"]["backend_kinds"] == [
        "anthropic",
        "ollama",
        "openai_compat",
    ]
    (mine,) = [p for p in listing.values() if p.get("backend_kinds") == ["echo"]]
    assert mine["hooks"] == ["register_backend_kinds"]
    assert "dispatch" in listing["devpulse.backend.mirror"]["hooks"]

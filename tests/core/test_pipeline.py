"""The Router's flow and the core's privacy invariant, with small plugins written here."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator

import pluggy
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from devpulse import (
    Chunk,
    CircuitOpen,
    Decision,
    DevPulseError,
    DispatchFailed,
    Labels,
    NoBackend,
    PreflightRefused,
    PrivacyBlocked,
    PrivacyLevel,
    Request,
    Response,
    Side,
    TaskClass,
    Verdict,
    hookimpl,
)
from tests.support import router_with

# Hard by the difficulty score (an arithmetic word problem): routes to the cloud.
WORD_PROBLEM = (
    "A train travels 180 km in 2 hours, then 240 km in 3 hours. "
    "How many km per hour did it average over the whole trip?"
)


class Marks:
    """A classifier that labels every request with a fixed privacy level."""

    def __init__(self, level: PrivacyLevel) -> None:
        self.level = level

    @hookimpl
    def classify(self, request: Request) -> Labels:
        return Labels(privacy_level=self.level)


class RouteTo:
    """A third-party routing policy that sends everything to one place."""

    def __init__(self, side: Side, backend: str, model: str = "m") -> None:
        self.decision = Decision(side, backend, model, ("policy says so",))

    @hookimpl
    def route(self, request: Request, classification: object) -> Decision:
        return self.decision


class Backends:
    """Owns every backend; records each dispatch and fails those named in `failing`."""

    def __init__(self, failing: tuple[str, ...] = ()) -> None:
        self.failing = failing
        self.calls: list[tuple[str, Request]] = []

    @hookimpl
    def dispatch(self, request: Request, decision: Decision) -> Response:
        self.calls.append((decision.backend, request))
        if decision.backend in self.failing:
            raise ConnectionResetError(f"{decision.backend} reset the connection")
        return Response(
            content=f"from {decision.backend}",
            model=decision.model,
            backend=decision.backend,
            side=decision.side,
        )

    def backends(self) -> list[str]:
        return [name for name, _ in self.calls]


class FailOverTo:
    def __init__(self, side: Side, backend: str) -> None:
        self.target = Decision(side, backend, "fallback-model", ("fail over",))
        self.seen: list[int] = []

    @hookimpl
    def on_failure(
        self, request: Request, decision: Decision, error: BaseException, attempt: int
    ) -> Decision:
        self.seen.append(attempt)
        return self.target


def test_an_installed_route_plugin_preempts_the_table(make_router) -> None:
    router = make_router(plugins=[RouteTo(Side.LOCAL, "llama_server", "tiny")])
    decision = router.route(WORD_PROBLEM)
    assert (decision.side, decision.backend, decision.model) == (Side.LOCAL, "llama_server", "tiny")
    assert decision.classification is not None
    assert decision.classification.task_class is TaskClass.REASONING


def test_sensitive_request_routed_to_cloud_by_a_plugin_is_refused(make_router) -> None:
    backends = Backends()
    router = make_router(
        plugins=[Marks(PrivacyLevel.SECRET), RouteTo(Side.CLOUD, "anthropic"), backends]
    )
    with pytest.raises(PrivacyBlocked, match="refused to send a secret request to 'anthropic'"):
        router.route("summarize this")
    with pytest.raises(PrivacyBlocked):
        router.invoke("summarize this")
    assert backends.calls == []


def test_a_plugin_cannot_launder_a_cloud_backend_as_local(make_router) -> None:
    backends = Backends()
    router = make_router(
        plugins=[Marks(PrivacyLevel.INTERNAL), RouteTo(Side.LOCAL, "anthropic"), backends]
    )
    with pytest.raises(PrivacyBlocked, match="cloud backend"):
        router.invoke("x")
    assert backends.calls == []


def test_undeclared_backends_are_refused_for_sensitive_work_only(make_router) -> None:
    backends = Backends()
    sensitive = make_router(
        plugins=[Marks(PrivacyLevel.SECRET), RouteTo(Side.LOCAL, "mystery"), backends]
    )
    with pytest.raises(PrivacyBlocked, match="undeclared backend"):
        sensitive.invoke("x")
    public = make_router(plugins=[RouteTo(Side.LOCAL, "mystery"), backends])
    assert public.invoke("x").backend == "mystery"
    assert backends.backends() == ["mystery"]


def test_threshold_is_configurable(make_router) -> None:
    relaxed = make_router(
        {"privacy": {"local_only_at": "secret"}},
        plugins=[Marks(PrivacyLevel.CONFIDENTIAL), RouteTo(Side.CLOUD, "anthropic"), Backends()],
    )
    assert relaxed.invoke("x").side is Side.CLOUD


def test_fallback_to_cloud_is_refused_for_sensitive_work(make_router) -> None:
    backends = Backends(failing=("llama_server",))
    failover = FailOverTo(Side.CLOUD, "anthropic")
    router = make_router(plugins=[Marks(PrivacyLevel.SECRET), backends, failover])
    with pytest.raises(PrivacyBlocked, match="'anthropic'"):
        router.invoke("summarize this", task=TaskClass.DRAFTING)
    assert backends.backends() == ["llama_server"]  # tried locally, never reached the cloud
    assert failover.seen == [1]


def test_fallback_to_cloud_serves_public_work(make_router) -> None:
    backends = Backends(failing=("llama_server",))
    router = make_router(plugins=[backends, FailOverTo(Side.CLOUD, "anthropic")])
    response = router.invoke("summarize this", task=TaskClass.DRAFTING)
    assert (response.backend, response.text) == ("anthropic", "from anthropic")
    assert backends.backends() == ["llama_server", "anthropic"]


def test_attempts_are_bounded_and_each_is_named(make_router) -> None:
    backends = Backends(failing=("ollama", "llama_server"))
    router = make_router(
        {"failover": {"max_attempts": 3}},
        plugins=[backends, FailOverTo(Side.LOCAL, "ollama")],
    )
    with pytest.raises(DispatchFailed) as info:
        router.invoke("summarize this")
    assert backends.backends() == ["llama_server", "ollama", "ollama"]
    assert len(info.value.attempts) == 3
    assert "ConnectionResetError" in str(info.value)


def test_a_single_failure_without_fallback_surfaces(make_router) -> None:
    router = make_router(
        {"failover": {"enabled": False}}, plugins=[Backends(failing=("llama_server",))]
    )
    with pytest.raises(DispatchFailed, match=r"llama_server/default: ConnectionResetError"):
        router.invoke("summarize this")


def test_nobody_owning_the_backend_is_a_clear_error(make_router) -> None:
    router = make_router({"failover": {"enabled": False}}, plugins=[RouteTo(Side.LOCAL, "mystery")])
    with pytest.raises(NoBackend, match="no backend plugin owns 'mystery'"):
        router.invoke("summarize this")


class Preflight:
    def __init__(self, verdict: Verdict) -> None:
        self.verdict = verdict

    @hookimpl
    def preflight(self, request: Request, decision: Decision) -> Verdict | None:
        return self.verdict if decision.side is Side.LOCAL else None


CLOUD = Decision(Side.CLOUD, "anthropic", "claude-haiku-4-5", ("cloud has room",))


def test_preflight_reroute_and_refuse(make_router) -> None:
    reroute = Verdict("reroute", "model does not fit", decision=CLOUD, details={"need_mb": 9})
    decision = make_router(plugins=[Preflight(reroute)]).route("summarize this")
    assert decision.backend == "anthropic"
    assert decision.verdict is reroute
    assert "model does not fit" in decision.reasons
    assert decision.as_dict()["preflight"] == {
        "action": "reroute",
        "reason": "model does not fit",
        "need_mb": 9,
    }
    sensitive = make_router(plugins=[Marks(PrivacyLevel.SECRET), Preflight(reroute)])
    with pytest.raises(PrivacyBlocked):
        sensitive.route("summarize this")
    refuse = make_router(plugins=[Preflight(Verdict("refuse", "no memory"))])
    with pytest.raises(PreflightRefused, match="no memory"):
        refuse.route("summarize this")


def test_merged_level_is_the_highest_any_classifier_reports(make_router) -> None:
    router = make_router(
        plugins=[
            Marks(PrivacyLevel.INTERNAL),
            Marks(PrivacyLevel.SECRET),
            Marks(PrivacyLevel.PUBLIC),
        ]
    )
    classification = router.classify(Request.from_prompt("x"))
    assert classification.privacy_level is PrivacyLevel.SECRET
    assert classification.local_only


class Streams:
    def __init__(self, cut_after: int | None = None) -> None:
        self.cut_after = cut_after
        self.calls = 0

    @hookimpl
    def dispatch(self, request: Request, decision: Decision) -> Iterator[Chunk]:
        self.calls += 1
        assert request.stream
        return self._chunks(decision)

    def _chunks(self, decision: Decision) -> Iterator[Chunk]:
        for i, word in enumerate(["a ", "b ", "c"]):
            if self.cut_after is not None and i == self.cut_after:
                raise ConnectionResetError("stream cut")
            yield Chunk("text_delta", text=word)
        yield Chunk(
            "message_stop",
            response=Response("a b c", decision.model, decision.backend, decision.side),
        )


def test_stream_yields_chunks_then_the_complete_response(make_router) -> None:
    chunks = list(make_router(plugins=[Streams()]).stream("summarize this"))
    assert "".join(c.text for c in chunks) == "a b c"
    assert chunks[-1].response is not None


def test_a_stream_cut_mid_answer_is_an_error_never_a_spliced_answer(make_router) -> None:
    streams = Streams(cut_after=2)
    router = make_router({"failover": {"enabled": False}}, plugins=[streams])
    received = []
    with pytest.raises(DispatchFailed, match="broke mid-answer"):
        received.extend(router.stream("summarize this"))
    assert streams.calls == 1
    assert [c.text for c in received] == ["a ", "b "]


def test_a_stream_cut_mid_answer_restarts_on_the_fallback_announced(make_router) -> None:
    class CutOnce(Streams):
        @hookimpl
        def dispatch(self, request: Request, decision: Decision) -> Iterator[Chunk]:
            self.calls += 1
            return self._chunks(decision)

        def _chunks(self, decision):
            self.cut_after = 2 if self.calls == 1 else None
            return super()._chunks(decision)

    streams = CutOnce()
    router = make_router(plugins=[streams, FailOverTo(Side.LOCAL, "ollama")])
    chunks = list(router.stream("summarize this"))
    texts = [c.text for c in chunks]
    restart = next(i for i, c in enumerate(chunks) if c.restart)
    assert texts[:restart] == ["a ", "b "]
    assert "".join(texts[restart + 1 :]) == "a b c"
    assert chunks[-1].response is not None
    assert chunks[-1].response.backend == "ollama"
    response = make_router(plugins=[CutOnce(), FailOverTo(Side.LOCAL, "ollama")]).invoke("x")
    assert response.text == "a b c"  # invoke never shows the cut answer


@pytest.mark.parametrize("way", ["invoke", "ainvoke", "stream"])
def test_a_task_named_by_its_string_is_answered_and_booked(make_router, tmp_path, way) -> None:
    """`task="drafting"` is the task class: the answer is booked, never lost after dispatch."""
    backends = Backends()
    router = make_router(
        {
            "local": {"backend": "steady", "model": "m"},
            "backends": {"steady": {"side": "local"}},
            "preflight": {"enabled": False},
            "ledger": {"path": str(tmp_path / "l.sqlite3")},
        },
        plugins=[backends],
    )
    calls = {
        "invoke": lambda: router.invoke("Draft a note", task="drafting").text,
        "ainvoke": lambda: asyncio.run(router.ainvoke("Draft a note", task="drafting")).text,
        "stream": lambda: (
            [c for c in router.stream("Draft a note", task="drafting")][-1].response.text
        ),
    }
    assert calls[way]() == "from steady"
    router.close()
    assert [r["task_class"] for r in router.ledger.rows()] == ["drafting"]


def test_an_unknown_task_name_fails_before_any_dispatch(make_router) -> None:
    backends = Backends()
    router = make_router(plugins=[backends])
    with pytest.raises(DevPulseError, match=r"unknown task 'drafts'.*drafting"):
        router.invoke("Draft a note", task="drafts")
    assert backends.calls == []
    assert Request.from_prompt("Draft", task="drafting").task is TaskClass.DRAFTING


def test_a_misspelled_hook_fails_loudly(make_router) -> None:
    class Typo:
        @hookimpl
        def clasify(self, request: Request) -> None:
            return None

    with pytest.raises(pluggy.PluginValidationError, match="clasify"):
        make_router(plugins=[Typo()])


DECLARED = {"ollama": Side.LOCAL, "llama_server": Side.LOCAL, "anthropic": Side.CLOUD}


@settings(max_examples=300, deadline=None)
@given(
    level=st.sampled_from(PrivacyLevel),
    threshold=st.sampled_from(PrivacyLevel),
    route=st.tuples(st.sampled_from(Side), st.sampled_from([*DECLARED, "undeclared"])),
    fallbacks=st.lists(
        st.tuples(st.sampled_from(Side), st.sampled_from([*DECLARED, "undeclared"])), max_size=3
    ),
    failing=st.sets(st.sampled_from([*DECLARED, "undeclared"])),
)
def test_property_local_only_work_never_reaches_a_non_local_backend(
    level, threshold, route, fallbacks, failing
) -> None:
    """Whatever a route plugin and a chain of fallbacks decide, the invariant holds."""

    class Chain:
        def __init__(self) -> None:
            self.queue = list(fallbacks)

        @hookimpl
        def on_failure(self, request, decision, error, attempt):
            if not self.queue:
                return None
            side, backend = self.queue.pop(0)
            return Decision(side, backend, "m")

    backends = Backends(failing=tuple(failing))
    router = router_with(
        {
            "privacy": {"local_only_at": threshold.label},
            "failover": {"max_attempts": 4},
            "ledger": {"enabled": False},  # no circuit carried from one example to the next
        },
        plugins=[Marks(level), RouteTo(*route), backends, Chain()],
    )
    with contextlib.suppress(PrivacyBlocked, DispatchFailed, CircuitOpen):
        router.invoke("x")
    if level >= threshold:
        assert all(DECLARED.get(name) is Side.LOCAL for name in backends.backends())

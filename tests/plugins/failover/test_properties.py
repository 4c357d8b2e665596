"""Property: whatever the cloud does, sensitive work never reaches it, and every request
ends in an answer or a clean error. Plus an outage: local serves it, the cloud comes back."""

from __future__ import annotations

import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from devpulse import DevPulseError, Request, Side, TaskClass
from tests.plugins.privacy import secrets_factory as make
from tests.rig.fault_server import STEPS, FaultServer, hybrid_config
from tests.rig.llama_server import LlamaServer
from tests.support import router_with

pytestmark = pytest.mark.rig
QUICK_STEPS = [s for s in STEPS if s not in ("silence", "slow_first_token", "stall")]


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    faults=st.lists(st.sampled_from(STEPS), min_size=1, max_size=4),
    kind=st.sampled_from(make.STANDALONE),
    seed=st.integers(0, 2**32),
    sensitive=st.booleans(),
    filler=st.text(alphabet=st.characters(codec="utf-8"), max_size=60),
)
def test_sensitive_work_never_reaches_the_cloud_whatever_it_does(
    llama_server: LlamaServer, tmp_path_factory, faults, kind, seed, sensitive, filler
) -> None:
    secret = kind(random.Random(seed))
    prompt = f"Design a multi-step plan. {filler} " + (f"Config: {secret}" if sensitive else "")
    with FaultServer(faults, hang_s=1.0) as fault:
        router = router_with(
            hybrid_config(
                fault,
                llama_server.base_url,
                str(tmp_path_factory.mktemp("l") / "l.sqlite3"),
                cloud_timeout_s=0.4,
                backoff_s=0.01,
            )
        )
        request = Request.from_prompt(prompt, task=TaskClass.REASONING, max_tokens=4)
        message = None
        try:
            response = router.invoke(request)
        except DevPulseError as error:  # a clean error, one line that says what was tried
            message, response = str(error), None
        if response is None:
            assert message
            assert "\n" not in message
        elif sensitive:
            assert response.side is Side.LOCAL
        # Nothing lost: exactly one booking, and "answered" only with an answer in hand.
        (row,) = router.ledger.rows()
        assert row["outcome"] == ("answered" if response is not None else "failed")
        if sensitive:
            assert fault.bodies == []
        for body in fault.bodies:
            assert secret not in str(body)


class Clock:
    """Wall-clock seconds that move only when the test says so."""

    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


def test_an_outage_is_served_locally_and_the_cloud_comes_back(llama_server, tmp_path) -> None:
    """An outage: local serves every request, the open circuit spares the cloud, and after
    the cool-down one probe finds it back. Time is the breaker's injected clock."""
    state = {"down": True}
    with FaultServer(lambda n: "529" if state["down"] else "ok") as fault:
        router = router_with(
            hybrid_config(
                fault,
                llama_server.base_url,
                str(tmp_path / "l.sqlite3"),
                breaker_cooldown_s=30.0,
                breaker_threshold=2,
            )
        )
        router.breakers.clock = clock = Clock()

        def ask() -> Side:
            return router.invoke(
                Request.from_prompt("Design a plan.", task=TaskClass.REASONING, max_tokens=4)
            ).side

        during = [ask() for _ in range(6)]
        assert during == [Side.LOCAL] * 6
        assert len(fault.bodies) == 2  # two failures opened the circuit; four were spared
        clock.now += 10
        state["down"] = False  # back, but the circuit is still open: no probe yet
        assert ask() is Side.LOCAL
        assert len(fault.bodies) == 2
        clock.now += 21  # the cool-down is over: one probe, which succeeds
        assert [ask() for _ in range(3)] == [Side.CLOUD] * 3
        assert len(fault.bodies) == 5
        assert router.breakers.states() == {}

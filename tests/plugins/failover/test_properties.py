"""Property: whatever the cloud does, sensitive work never reaches it, and every request
ends in an answer or a clean error. Plus an outage: local serves it, the cloud comes back."""

from __future__ import annotations

import random
import time

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
        try:
            response = router.invoke(request)
        except DevPulseError as error:  # a clean error, never a crash or a silent nothing
            message = str(error)
        else:
            message = ""
            assert response.text is not None
            if sensitive:
                assert response.side is Side.LOCAL
        assert "Traceback" not in message
        if sensitive:
            assert fault.bodies == []
        for body in fault.bodies:
            assert secret not in str(body)


def test_an_outage_is_served_locally_and_the_cloud_comes_back(llama_server, tmp_path) -> None:
    """20 requests across an outage (scaled: 4 s down instead of 60, 1 s probe interval)."""
    began = time.monotonic()
    outage_s, cooldown_s = 4.0, 1.0

    def script(n: int) -> str:
        return "529" if time.monotonic() - began < outage_s else "ok"

    with FaultServer(script) as fault:
        router = router_with(
            hybrid_config(
                fault,
                llama_server.base_url,
                str(tmp_path / "l.sqlite3"),
                breaker_cooldown_s=cooldown_s,
                breaker_threshold=2,
            )
        )
        served = []
        for _ in range(20):
            at = time.monotonic() - began
            response = router.invoke(
                Request.from_prompt(
                    "Design a multi-step plan.", task=TaskClass.REASONING, max_tokens=4
                )
            )
            served.append((at, response.side))
            time.sleep(max(0.0, (len(served) * 0.35) - (time.monotonic() - began)))
    during = [side for at, side in served if at < outage_s]
    assert during
    assert all(side is Side.LOCAL for side in during)
    after = [(at, side) for at, side in served if at >= outage_s + cooldown_s + 0.4]
    assert after
    assert all(side is Side.CLOUD for _, side in after)
    cloud_during = len([b for b in fault.bodies])
    assert cloud_during < len(served)  # the open circuit spared most outage requests

"""Property-based: a planted secret is found anywhere, and no input breaks the scanner."""

from __future__ import annotations

import random

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from devpulse import PrivacyLevel, config_from_mapping
from devpulse.plugins.privacy import Scanner
from devpulse.plugins.privacy.checks import PUBLIC_PREFIX, has_alnum
from tests.plugins.privacy import secrets_factory as make
from tests.support import router_with

SCANNER = Scanner(config_from_mapping({}).privacy)
ROUTER = router_with()


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    before=make.AROUND,
    after=make.AROUND,
    kind=st.sampled_from(make.STANDALONE),
    seed=st.integers(0, 2**32),
)
def test_a_planted_secret_is_found_anywhere(before, after, kind, seed) -> None:
    secret = kind(random.Random(seed))
    text = f"{before}\n{secret}\n{after}"
    start, end = len(before) + 1, len(before) + 1 + len(secret)
    findings = SCANNER.scan(text)
    covering = [
        f for f in findings if f.category == "secret" and f.span[0] < end and f.span[1] > start
    ]
    assert covering, f"{kind.__name__} not found"
    for finding in findings:
        shown = finding.preview.split("…")[0]
        assert shown == "" or PUBLIC_PREFIX.fullmatch(shown), finding.preview


@settings(max_examples=200, deadline=None)
@given(
    before=make.AROUND,
    after=make.AROUND,
    kind=st.sampled_from(make.STANDALONE),
    seed=st.integers(0, 2**32),
)
def test_a_planted_secret_always_routes_local(before, after, kind, seed) -> None:
    prompt = f"{before}\nDesign a multi-step plan using {kind(random.Random(seed))}\n{after}"
    decision = ROUTER.route(prompt)
    assert decision.classification is not None
    assert decision.classification.privacy_level is PrivacyLevel.SECRET
    assert decision.side.value == "local"


@settings(max_examples=500, deadline=None)
@given(text=st.text(max_size=2000) | st.binary(max_size=2000).map(lambda b: b.decode("latin-1")))
def test_arbitrary_text_never_crashes_and_spans_are_valid(text) -> None:
    for finding in SCANNER.scan(text):
        start, end = finding.span
        assert 0 <= start < end <= len(text)
        assert finding.preview.endswith(" chars]")


@settings(max_examples=100, deadline=None)
@given(code=st.text(alphabet=st.sampled_from(list("abc_=:'\"()\n [],.#xyz0189")), max_size=300))
def test_arbitrary_code_fences_never_crash(code) -> None:
    SCANNER.scan(f"```python\n{code}\n```")
    SCANNER.scan(code)


@settings(max_examples=500, deadline=None)
@given(
    st.text(alphabet=st.sampled_from("ab_.-!'\"é1Z \u2603\u0663\u00b2\x00"), max_size=12)
    | st.text()
)
def test_has_alnum_agrees_with_isalnum(text: str) -> None:
    assert has_alnum(text) == any(map(str.isalnum, text))

"""The LangChain guard: a sensitive prompt bound for a cloud model never leaves the machine.

Run it against the embedded rig (llama-server answers Anthropic's `/v1/messages`, so the
real `ChatAnthropic` talks to it as it would to the cloud):

    python -m tests.rig.serve --port 8080 -- python examples/langchain_guard.py

With a real key, `ANTHROPIC_BASE_URL=https://api.anthropic.com EXAMPLE_MODEL=claude-...`
guards the real cloud the same way. ChatAnthropic is a cloud model to the guard wherever it
points, so the first prompt is refused before any connection is opened; the second one is
answered and booked in the DevPulse ledger.
"""

from __future__ import annotations

import os

from langchain_anthropic import ChatAnthropic

from devpulse import Router
from devpulse.core.errors import PrivacyBlocked
from devpulse.integrations.langchain import DevPulseCallbackHandler

SENSITIVE = "Why does boto3 reject this? aws_secret_access_key=AKIAZ3MXQ7PLR2VWK4TN"
CLEAN = "Say hello to the team in one short sentence."


def main() -> None:
    router = Router()
    model = ChatAnthropic(  # type: ignore[call-arg]
        model=os.environ.get("EXAMPLE_MODEL", "smollm2-135m-instruct"),
        base_url=os.environ.get("ANTHROPIC_BASE_URL", "http://127.0.0.1:8080"),
        api_key=os.environ.get("ANTHROPIC_API_KEY", "the-rig-needs-no-key"),
        max_tokens=32,
        max_retries=0,
        callbacks=[DevPulseCallbackHandler(router)],
    )
    try:
        model.invoke(SENSITIVE)
        print("sensitive prompt: SENT (the guard did not stop it)")
    except PrivacyBlocked as blocked:
        print(f"sensitive prompt: blocked before it left: {blocked}")
    answer = model.invoke(CLEAN)
    usage = answer.usage_metadata or {}
    print(
        f"clean prompt: answered ({usage.get('input_tokens')} tokens in, "
        f"{usage.get('output_tokens')} out): {str(answer.content).strip()[:80]!r}"
    )
    ledger = router.ledger
    if ledger is not None:
        outcomes = [row["outcome"] for row in ledger.rows()]
        print(
            f"ledger {ledger.path}: {outcomes.count('refused')} refused, "
            f"{outcomes.count('answered')} answered"
        )


if __name__ == "__main__":
    main()

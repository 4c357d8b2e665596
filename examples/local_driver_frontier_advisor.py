"""Local driver, frontier advisor: the local side runs the job and consults the frontier
only on the steps the router ranks hard.

Each step goes through a `DevPulseChatModel` with no task class, so the router's difficulty
score decides: easy steps stay local, hard ones (here, a maths word problem) go to the
cloud. Every step prints the side that answered and why; the split comes from the ledger.
With no API key the hard step fails over to local, and the job still completes.

    python -m tests.rig.serve --port 8080 -- python examples/local_driver_frontier_advisor.py
"""

from __future__ import annotations

import uuid

from _ledger_split import print_split  # beside this file: python puts its folder first

from devpulse import Router
from devpulse.integrations.langchain import DevPulseChatModel

STEPS = [
    "Summarize in one line: the nightly build is green again.",
    "Draft a two-line note to the team about tomorrow's deploy.",
    "A job queue takes 120 jobs an hour and 4 workers each finish 25 jobs an hour. If 2 more "
    "workers join after 3 hours, how many jobs are waiting after 6 hours, starting from 50?",
    "Say thanks to the reviewers in one sentence.",
]


def main() -> None:
    session = f"example-{uuid.uuid4().hex[:8]}"
    router = Router()
    advisor = DevPulseChatModel(router=router, max_tokens=32)
    for step in STEPS:
        decision = router.route(step)
        answer = advisor.invoke(step, config={"metadata": {"session_id": session}})
        meta = answer.response_metadata
        hard = "hard" if decision.side.value == "cloud" else "easy"
        difficulty = decision.classification.difficulty if decision.classification else None
        print(
            f"{hard} (difficulty {difficulty:.2f}), routed {decision.side.value}, "
            f"answered {meta['side']} by {meta['backend']}: {step[:50]!r}"
        )
    print(f"cost split for session {session}:")
    print_split(router, session)


if __name__ == "__main__":
    main()

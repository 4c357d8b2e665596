"""Frontier driver, local subagents: the cloud plans, the local side does the volume work.

A driver call (task ``reasoning``: the cloud side) breaks a job into subtasks; one subagent
call per subtask (task ``drafting``: the local side) fans out in parallel. The split of
requests, tokens and dollars comes from the DevPulse ledger at the end, with the savings
against sending everything to the cloud.

With no API key the driver's call fails over to the local side (the capacity hedge) and the
pipeline still completes; the split then shows everything local. Against the embedded rig:

    python -m tests.rig.serve --port 8080 -- python examples/frontier_driver_local_subagents.py

The rig's model is a 135M stand-in: its plan is rarely a good one. The example takes the
plan's first non-empty lines as subtasks, and falls back to the job's own three parts when
the plan has fewer, so the fan-out always runs.
"""

from __future__ import annotations

import uuid

from _ledger_split import print_split  # beside this file: python puts its folder first
from langchain_core.messages import HumanMessage, SystemMessage

from devpulse import Router
from devpulse.integrations.langchain import DevPulseChatModel

JOB = "Write release notes for version 2.0: the new CLI, the faster ledger, the dropped Python 3.9."
PARTS = ["the new CLI", "the faster ledger", "the dropped Python 3.9"]
SUBTASKS = 3


def main() -> None:
    session = f"example-{uuid.uuid4().hex[:8]}"
    router = Router()
    model = DevPulseChatModel(router=router, max_tokens=48)
    hints = {"metadata": {"session_id": session}}

    driver = model.bind(task="reasoning")
    plan = driver.invoke(
        [
            SystemMessage("You plan work. Answer with one subtask per line, nothing else."),
            HumanMessage(f"Split this job into {SUBTASKS} subtasks: {JOB}"),
        ],
        config=hints,
    )
    meta = plan.response_metadata
    print(f"driver: answered on the {meta['side']} side by {meta['backend']}/{meta['model_name']}")
    lines = [line.strip(" -*0123456789.") for line in str(plan.content).splitlines()]
    subtasks = [line for line in lines if line][:SUBTASKS]
    if len(subtasks) < SUBTASKS:
        subtasks = [f"Write one release-note line about {part}." for part in PARTS]

    subagent = model.bind(task="drafting", max_tokens=32)
    answers = subagent.batch(
        [[HumanMessage(task)] for task in subtasks],
        config={**hints, "max_concurrency": SUBTASKS},
    )
    for task, answer in zip(subtasks, answers, strict=True):
        side = answer.response_metadata["side"]
        print(f"subagent ({side}): {task[:60]!r} -> {str(answer.content).strip()[:60]!r}")

    print(f"cost split for session {session}:")
    print_split(router, session)


if __name__ == "__main__":
    main()

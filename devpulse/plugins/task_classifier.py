"""The bundled task classifier: infers a task class from the shape and wording of a request.

Rules run in order and the first that fires names the class; its name is recorded as the
reason. Wording rules read only the head of the last user message, where the instruction
sits, so a 100 KB paste costs no more than a short prompt. They run on RE2, as everything
that reads request text does, so no wording can make them slow.
"""

from __future__ import annotations

import re2

from devpulse.core.config import ClassifyConfig
from devpulse.core.tokens import estimate_tokens
from devpulse.core.types import Labels, Request, TaskClass
from devpulse.hookspecs import hookimpl

HEAD_CHARS = 2000


def _words(*alternatives: str) -> re2._Regexp:
    r"""Any of `alternatives` at the start of a word, in any case.

    Each starts with a letter, so "after no word character" is the `\b` that Python's `re`
    gave: RE2's `\b` knows ASCII words only, and `[\pL\pN_]` is Python's `\w`.
    """
    return re2.compile(r"(?:^|[^\pL\pN_])(?i:" + "|".join(alternatives) + ")")


FIM_MARKERS = re2.compile(r"<\|fim_(?:prefix|suffix|middle)\|>|<fim_(?:prefix|suffix)>|<PRE>")
PLANNING = _words(
    "plan", "steps?", "multi-step", "orchestrat", "workflow", "then", "until", "autonomous"
)
# Ordered: the first wording rule that matches wins.
WORDING: tuple[tuple[str, TaskClass, re2._Regexp], ...] = (
    (
        "review_request",
        TaskClass.CODE_REVIEW,
        _words(r"review (?:this|my|the|our)", "code review", "critique", "audit (?:this|my)"),
    ),
    (
        "refactor_verb",
        TaskClass.REFACTOR,
        _words(
            "refactor",
            "rename",
            r"extract (?:a |an |the )?(?:method|function|class)",
            "clean up",
            "simplify this",
            "dedupe",
        ),
    ),
    (
        "drafting_verb",
        TaskClass.DRAFTING,
        _words(
            "summari[sz]e",
            "summary of",
            "tl;?dr",
            "draft",
            "rewrite",
            "rephrase",
            "translate",
            "proofread",
            "paraphrase",
            "write (?:a|an) (?:email|note|reply)",
        ),
    ),
    (
        "reasoning_language",
        TaskClass.REASONING,
        _words(
            "multi-step",
            "step[- ]by[- ]step",
            r"design (?:a|an|the)",
            "architect",
            "migration plan",
            "trade-?offs?",
            "root cause",
            "prove",
            "derive",
            "reason through",
            "strategy for",
            "formal(?:ly)? verif",
        ),
    ),
    (
        "domain_language",
        TaskClass.DOMAIN_EXPERT,
        _words(
            "legal",
            "lawsuit",
            "contract law",
            "regulator",
            "complian",
            "clinical",
            "diagnos",
            "pharmac",
            "patent",
            "tax code",
            "actuarial",
            "genomic",
        ),
    ),
)


class TaskClassifier:
    """Labels each request with a task class; an explicit ``request.task`` skips the rules."""

    def __init__(self, config: ClassifyConfig) -> None:
        self._config = config

    @hookimpl
    def classify(self, request: Request) -> Labels | None:
        if request.task is not None:
            return None
        task, rule = self._infer(request)
        return Labels(task_class=task, rule=rule)

    def _infer(self, request: Request) -> tuple[TaskClass, str]:
        # The instruction is the last user text: in an agent loop, later user turns may hold
        # only tool results.
        instruction = next(
            (m.text for m in reversed(request.messages) if m.role == "user" and m.text), ""
        )
        head = instruction[:HEAD_CHARS].encode("utf-8", "surrogatepass")
        if request.suffix is not None or FIM_MARKERS.search(head):
            return TaskClass.AUTOCOMPLETE, "fill_in_the_middle"
        if request.has_images:
            return TaskClass.MULTIMODAL, "image_content"
        # Not characters / 4: JSON, hex or a binary file's text run far more tokens than that.
        # Everything that is sent counts: system, tool definitions, tool calls and results.
        tokens = estimate_tokens(request.text())
        if tokens > self._config.long_context_tokens:
            return (
                TaskClass.LONG_CONTEXT,
                f"long_context (~{tokens} tokens > {self._config.long_context_tokens})",
            )
        if request.tools and PLANNING.search(head):
            return TaskClass.AGENTIC, "tools_with_planning"
        for rule, task, pattern in WORDING:
            if pattern.search(head):
                return task, rule
        max_words = self._config.quick_qa_max_words
        if len(instruction) < max_words * 16 and len(instruction.split()) <= max_words:
            return TaskClass.QUICK_QA, "short_prompt"
        return self._config.default_task, "default"

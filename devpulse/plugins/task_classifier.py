"""The bundled task classifier: a task class from a request's shape, else from its difficulty.

Shape rules run in order and the first that fires names the class; its name is recorded as
the reason. They recognise kinds of work by form, not topic: fill-in-the-middle markers,
images, a long context, tools with a plan, code with a review or refactor request. Any
other prompt is named by its difficulty score (devpulse/plugins/difficulty): the hardest
share of typical traffic (`routing.cloud_share`) is `reasoning`, the rest `quick_qa`.

The seed's wording lists for reasoning ("prove", "architect", "trade-off"...) and domain
expertise ("legal", "clinical"...) are gone, and so are "short prompt" and drafting verbs as
classes: scored on RouteLLM's MMLU development half, the first two sent prompts with no
more than the average strong-model gain to the cloud, and the last two kept prompts with
more than the average gain local (docs/routing.md has the figures). Drafting verbs live on
as a difficulty feature instead.

Wording rules read only the head of the last user message, where the instruction sits, so a
100 KB paste costs no more than a short prompt. They run on RE2, as everything that reads
request text does, so no wording can make them slow.
"""

from __future__ import annotations

import re2

from devpulse.core.config import ClassifyConfig, RoutingPolicy
from devpulse.core.tokens import estimate_tokens
from devpulse.core.types import Labels, Request, TaskClass
from devpulse.hookspecs import hookimpl
from devpulse.plugins.difficulty import model as difficulty
from devpulse.plugins.privacy.spans import found_in

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
# Code in the text: a fence, or lines that end or open the way code does.
CODE = re2.compile(r"(?m)```|[{};]\s*$|^\s*(?:def|class|return|import|#include|function)\b")
# Code work the seed table keeps local. Each rule needs code in the request: without it, the
# same words ("review the evidence", "simplify this expression") are questions, whose
# difficulty decides. Measured on MMLU, the review wording without code picked prompts with
# almost three times the average strong-model gain, and kept them local.
CODE_WORDING: tuple[tuple[str, TaskClass, re2._Regexp], ...] = (
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
)


class TaskClassifier:
    """Labels each request with a task class and a difficulty.

    An explicit ``request.task`` skips the rules (the difficulty is still reported). A
    request that no shape rule recognises is named by its difficulty: `reasoning` at or above
    the threshold that `routing.cloud_share` sets, `quick_qa` below it.
    """

    loop_safe = True  # pure CPU: the async path may classify on its loop (core/inline.py)

    def __init__(self, config: ClassifyConfig, policy: RoutingPolicy | None = None) -> None:
        self._config = config
        self._policy = policy or RoutingPolicy()
        self._model = difficulty.load()

    @hookimpl
    def classify(self, request: Request) -> Labels | None:
        text = request.text()
        # Everything that is sent counts: system, tool definitions, tool calls and results.
        tokens = estimate_tokens(text)
        score = self._model.score(text, tokens)
        if request.task is not None:
            return Labels(difficulty=score.difficulty, reasons=(score.reason(),))
        task, rule = self._infer(request, score.difficulty, tokens)
        return Labels(
            task_class=task, rule=rule, difficulty=score.difficulty, reasons=(score.reason(),)
        )

    def _infer(self, request: Request, level: float, tokens: int) -> tuple[TaskClass, str]:
        # The instruction is the last user text: in an agent loop, later user turns may hold
        # only tool results.
        instruction = next(
            (m.text for m in reversed(request.messages) if m.role == "user" and m.text), ""
        )
        head = instruction[:HEAD_CHARS].encode("utf-8", "surrogatepass")
        if request.suffix is not None or found_in(FIM_MARKERS, head):
            return TaskClass.AUTOCOMPLETE, "fill_in_the_middle"
        if request.has_images:
            return TaskClass.MULTIMODAL, "image_content"
        # `tokens` is not characters / 4: JSON, hex or a binary file's text run far more
        # tokens than that.
        if tokens > self._config.long_context_tokens:
            return (
                TaskClass.LONG_CONTEXT,
                f"long_context (~{tokens} tokens > {self._config.long_context_tokens})",
            )
        if request.tools and found_in(PLANNING, head):
            return TaskClass.AGENTIC, "tools_with_planning"
        if found_in(CODE, head):
            for rule, task, pattern in CODE_WORDING:
                if found_in(pattern, head):
                    return task, rule
        threshold = self._policy.threshold
        if level >= threshold:
            return TaskClass.REASONING, f"difficult ({level:.2f} >= {threshold:.2f})"
        return TaskClass.QUICK_QA, f"easy ({level:.2f} < {threshold:.2f})"

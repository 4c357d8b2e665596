"""The privacy classifier plugin: labels every request, and adds `devpulse scan`."""

from __future__ import annotations

import click

from devpulse.core.blocks import joined_text
from devpulse.core.config import Config, PrivacyConfig
from devpulse.core.types import Labels, Request
from devpulse.hookspecs import hookimpl
from devpulse.plugins.privacy.scanner import Scanner


def outbound_text(request: Request) -> str:
    """Everything of `request` that leaves the machine (`Request.text`), and again each run
    of text blocks joined with nothing between, as OpenAI-compatible and Ollama bodies join
    them: a secret cut over two blocks is one secret on the wire."""
    text = request.text()
    joined = [t for message in request.messages for t in joined_text(message.content)]
    return "\n".join([text, *joined]) if joined else text


class PrivacyClassifier:
    """Reports secrets, personal data and internal references as findings with a level.

    The core turns the level into `local_only`; the matched text never leaves the scanner.
    """

    loop_safe = True  # scanning is pure CPU: the async path may classify on its loop

    def __init__(self, config: PrivacyConfig, *, eager: bool = True) -> None:
        self.scanner = Scanner(config, eager=eager)  # eager=False: compiled on first scan
        self.max_bytes = 64 * 1024 * 1024  # input.max_bytes's default, until `configure`

    @hookimpl
    def configure(self, config: Config) -> None:
        self.max_bytes = config.input.max_bytes  # what `devpulse scan` reads of each file

    @hookimpl
    def classify(self, request: Request) -> Labels | None:
        findings = tuple(self.scanner.scan(outbound_text(request)))
        if not findings:
            return None
        level = max(f.level for f in findings)
        rules = sorted({f.rule_id for f in findings})
        return Labels(
            privacy_level=level,
            findings=findings,
            reasons=(
                f"privacy: {len(findings)} finding(s), level {level.label} ({', '.join(rules)})",
            ),
        )

    @hookimpl
    def register_commands(self, cli: click.Group) -> None:
        from devpulse.plugins.privacy.command import scan_command  # noqa: PLC0415  # CLI-only

        cli.add_command(scan_command(self.scanner, self.max_bytes))

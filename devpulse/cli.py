"""The `devpulse` command line. The only place that configures log output.

Human output goes to stdout, logs to stderr. Every command takes ``--json``, whose output
always has a ``status`` key. Errors are one line on stderr (and a JSON object with
``status: "error"`` on stdout under ``--json``), with an exit code from `ExitCode`: never a
traceback, whatever the input, an interrupt (130, or 143 for SIGTERM) or a reader that
closes the pipe (1).
"""

from __future__ import annotations

import contextlib
import copy
import json
import logging
import os
import signal
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeVar

import click

from devpulse import __version__
from devpulse.commands.inputs import without_surrogates
from devpulse.commands.prompt import prompt_options, read_prompt
from devpulse.core.config import Config, config_from_mapping, load_config
from devpulse.core.errors import ConfigError, DevPulseError
from devpulse.core.exitcodes import ExitCode
from devpulse.core.types import Request, TaskClass

if TYPE_CHECKING:
    import pluggy

    from devpulse.core.pipeline import Router
    from devpulse.core.plugins import BrokenPlugin

F = TypeVar("F", bound=Callable[..., Any])
VERSION = "%(prog)s, version %(version)s"
CUT = "the output was cut: stdout closed before the end"
# The commands that still run when an installed plugin fails to load, to show which.
DIAGNOSES = frozenset({"plugins", "doctor"})


@dataclass
class App:
    """What every command can reach: the config, the plugin manager and a Router over both."""

    config: Config
    pm: pluggy.PluginManager
    #: Installed plugins that failed to load, left out: only for the commands that
    #: diagnose (`DIAGNOSES`); every other command refuses to run without them.
    broken_plugins: list[BrokenPlugin] = field(default_factory=list)
    #: Why no command but the help (and `doctor`) may run: a config that cannot be loaded
    #: (`config` is then the packaged defaults) or an installed plugin that does not (`_app`).
    config_error: ConfigError | None = None

    _router: Router | None = None

    @property
    def router(self) -> Router:
        if self._router is None:
            from devpulse.core.pipeline import Router  # noqa: PLC0415  # not for --version

            self._router = Router(self.config, plugin_manager=self.pm)
        return self._router


pass_app = click.make_pass_decorator(App)


def json_option(fn: F) -> F:
    """The ``--json`` flag every command takes."""
    return click.option("--json", "as_json", is_flag=True, help="Print JSON.")(fn)


def emit(payload: dict[str, Any]) -> None:
    """Print one JSON document on stdout."""
    click.echo(json.dumps(payload, ensure_ascii=False, sort_keys=False, allow_nan=False))


class Interrupted(DevPulseError):
    """Ctrl-C (SIGINT) stopped the command, or SIGTERM (raised from `Terminated`)."""

    exit_code = ExitCode.INTERRUPTED


class Terminated(KeyboardInterrupt):
    """SIGTERM stopped the command (a service manager, `docker stop`, `timeout`, a cancelled
    CI job). The console script raises it where Ctrl-C's KeyboardInterrupt would be, so the
    library cancels the request and books it as it does on Ctrl-C."""


class OutputClosed(DevPulseError):
    """Whoever read stdout went away (``| head``): the output was cut short."""


class _Group(click.Group):
    """A click group that lets an interrupt or a closed stdout reach `main`.

    Left to click, an interrupt becomes a blank line and `Abort`, and a broken pipe a
    silent exit of its own.
    """

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except Terminated as exc:
            raise Interrupted("terminated") from exc
        except KeyboardInterrupt:
            raise Interrupted("interrupted") from None
        except BrokenPipeError:
            raise OutputClosed("the output was cut: stdout closed before the end") from None


@click.command("route")
@prompt_options
@json_option
@pass_app
def route_command(app: App, prompt: str | None, path: Any, task: str | None, as_json: bool) -> None:
    """Print where PROMPT would go: local or cloud ('-' reads stdin).

    Exit codes: 0 decided, 1 no plugin could decide, 2 usage or config error, or bad input
    (an empty prompt, more than input.max_bytes).
    """
    text = read_prompt(prompt, path, app.config.input.max_bytes)
    request = Request.from_prompt(text, task=TaskClass(task) if task else None)
    decision = app.router.route(request)
    if as_json:
        emit({"status": "ok", **decision.as_dict()})
    else:
        click.echo(decision.side.value)


@click.command("plugins")
@json_option
@pass_app
def plugins_command(app: App, as_json: bool) -> None:
    """List the plugins loaded and the hooks each implements, and any installed plugin that
    failed to load, with why (it is left out; every other command refuses to run).

    Exit codes: 0 listed, 1 an installed plugin failed to load, 2 usage or config error.
    """
    from devpulse.core.plugins import plugin_listing  # noqa: PLC0415  # not for --version
    from devpulse.plugins.privacy.redact import redact  # noqa: PLC0415

    listing = plugin_listing(app.pm)
    # A plugin's error may quote anything: a secret in it is redacted.
    broken = [{**asdict(b), "error": redact(b.error)} for b in app.broken_plugins]
    if as_json:
        emit({"status": "fail" if broken else "ok", "plugins": listing, "broken": broken})
    else:
        for entry in listing:
            origin = entry["source"]
            if "distribution" in entry:
                origin = f"{entry['distribution']} {entry['version']}"
            click.echo(f"{entry['name']} ({origin}): {', '.join(entry['hooks'])}")
        for b in broken:
            click.echo(
                f"{b['entry_point']} ({b['distribution']} {b['version']}): "
                f"BROKEN, not loaded: {b['error']}"
            )
    if broken:
        click.get_current_context().exit(int(ExitCode.PROBLEM))


def build_cli(app: App) -> click.Group:
    """The command group: the core commands plus whatever plugins register."""

    @click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
    @click.version_option(__version__, prog_name="devpulse", message=VERSION)
    @click.option(
        "--config",
        "config_path",
        metavar="FILE",
        help="Config file (default: $DEVPULSE_CONFIG, then the XDG config path).",
    )
    @click.option("-v", "--verbose", count=True, help="More log output on stderr (-vv: debug).")
    @click.pass_context
    def cli(ctx: click.Context, config_path: str | None, verbose: int) -> None:
        """Route each LLM request to the right side of a hybrid local/cloud stack.

        Exit codes (devpulse.ExitCode): 0 ok, 1 ran and found a problem (or the output was
        cut by a closed pipe, or an internal error), 2 usage, config or input error, 10 and
        20 for the memory preflight (tight, no fit), 130 interrupted (Ctrl-C), 143
        terminated (SIGTERM). Each command's --help says which it uses.
        """
        configure_logging(verbose)
        ctx.obj = app

    # Here, not at the top: --version answers before any of them is needed.
    from devpulse.commands.ask import ask_command  # noqa: PLC0415
    from devpulse.commands.config_cmd import config_command  # noqa: PLC0415
    from devpulse.commands.cost import cost_command  # noqa: PLC0415
    from devpulse.commands.doctor import doctor_command  # noqa: PLC0415

    cli.add_command(route_command)
    cli.add_command(plugins_command)
    cli.add_command(ask_command)
    cli.add_command(cost_command)
    cli.add_command(config_command)
    cli.add_command(doctor_command)
    app.pm.hook.register_commands(cli=cli)
    return cli


class _Stderr(logging.Handler):
    """Writes each record to whatever `sys.stderr` is at that moment (tests swap it)."""

    def emit(self, record: logging.LogRecord) -> None:
        if sys.stderr is None:  # started with stderr closed (2>&-)
            return
        try:
            sys.stderr.write(self.format(record) + "\n")
        except Exception:
            self.handleError(record)


class _Lines(logging.Formatter):
    """One line per event: key=value on a terminal, a JSON object otherwise."""

    def __init__(self, as_json: bool) -> None:
        super().__init__()
        self.as_json = as_json

    def format(self, record: logging.LogRecord) -> str:
        event = getattr(record, "devpulse_event", None) or record.getMessage()
        fields = getattr(record, "devpulse_fields", None) or {}
        when = datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds")
        level = record.levelname.lower()
        if self.as_json:
            return json.dumps(
                {"timestamp": when, "level": level, "event": event, **fields}, default=str
            )
        pairs = " ".join(f"{k}={v}" for k, v in fields.items())
        return f"{when} [{level:<7}] {event}" + (f" {pairs}" if pairs else "")


def configure_logging(verbose: int) -> None:
    """DevPulse's loggers to stderr: key=value on a terminal, JSON lines otherwise.

    The library only ever logs through stdlib logging; this is the one place output is set.
    """
    name = os.environ.get("DEVPULSE_LOG_LEVEL", "").upper()
    level = getattr(logging, name, None) if name else None
    if not isinstance(level, int):
        level = (logging.WARNING, logging.INFO, logging.DEBUG)[min(verbose, 2)]
    handler = _Stderr()
    handler.setFormatter(_Lines(as_json=not (sys.stderr is not None and sys.stderr.isatty())))
    logger = logging.getLogger("devpulse")
    for old in [h for h in logger.handlers if isinstance(h, _Stderr)]:
        logger.removeHandler(old)
    logger.addHandler(handler)
    logger.setLevel(level)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `devpulse` console script; returns the exit code.

    Every way out is an exit code from `ExitCode` and at most one line on stderr: an
    interrupt, start-up included, is 130 (143 for SIGTERM, where `run` handles it); a closed
    stdout is 1; anything unexpected is 1 with "internal error" (and its traceback with -vv).
    """
    args = list(sys.argv[1:] if argv is None else argv)
    as_json = _wants_json(args)
    if _asks_version(args):  # before the config and the plugins: the version needs neither
        return _say(VERSION % {"prog": "devpulse", "version": __version__})
    try:
        return _invoke(args)
    except click.UsageError as exc:
        return _fail(exc.format_message(), ExitCode.USAGE, as_json)
    except click.ClickException as exc:
        return _fail(exc.format_message(), ExitCode.USAGE, as_json)
    except (KeyboardInterrupt, click.Abort, Interrupted) as exc:
        if _terminated(exc):
            return _fail("terminated", ExitCode.TERMINATED, as_json)
        return _fail("interrupted", ExitCode.INTERRUPTED, as_json)
    except (BrokenPipeError, OutputClosed):
        _discard_stdout()
        return _fail(CUT, ExitCode.PROBLEM, False)
    except DevPulseError as exc:
        return _fail(str(exc), exc.exit_code, as_json)
    except OSError as exc:  # the system refused: a full disk under stdout (> /dev/full)
        code = _fail(_os_error(exc), ExitCode.PROBLEM, as_json)
        _discard_stdout()  # what is still buffered cannot be written either
        return code
    except Exception as exc:  # the last resort: a bug, said in one line
        if logging.getLogger("devpulse").isEnabledFor(logging.DEBUG):
            traceback.print_exc()
        detail = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        return _fail(f"internal error: {detail} (please report)", ExitCode.PROBLEM, as_json)


def _invoke(args: list[str]) -> int:
    """Build the command group for `args` and run it."""
    app = _app(args)
    cli: click.Command = build_cli(app)
    unused = app.config_error
    if _command_name(args) == "doctor" and not _asks_help(args):
        unused = None  # doctor reports it
    if unused is not None:  # what is in place of the user's config and plugins may not run
        cli = _refusing(cli, unused)
    try:
        result = cli.main(args=args, prog_name="devpulse", standalone_mode=False)
    except click.exceptions.NoArgsIsHelpError as exc:
        result = _say(exc.ctx.get_help() if exc.ctx else str(exc))
        if result != ExitCode.OK:
            return int(result)
    if unused is not None:  # what ran was the help: a command would have raised `unused`
        return _warn_unused(unused)
    return int(result) if isinstance(result, int) else ExitCode.OK


def _app(args: list[str]) -> App:
    """The config and plugins that `args` run with.

    A config that cannot be loaded stops every command but two: the help, shown from the
    packaged defaults and then a warning that says why, and `doctor`, which reports it as
    its config check. An installed plugin that does not load stops every command but the
    help (from the user's config, the plugin left out, and the warning), `plugins` and
    `doctor`. None of them routes anything.
    """
    from devpulse.core.plugins import (  # noqa: PLC0415  # not for --version
        PluginLoadError,
        make_plugin_manager,
    )

    broken: list[BrokenPlugin] = []
    command = _command_name(args)
    try:
        config = load_config(_peek_option(args, "--config"))
        pm = make_plugin_manager(config, broken=broken, eager=False)  # --help: no rules
    except ConfigError as exc:
        if not (_asks_help(args) or command == "doctor"):
            raise
        error = exc
    else:
        if not broken or command in DIAGNOSES:
            return App(config=config, pm=pm, broken_plugins=broken)
        refused = PluginLoadError(broken[0])  # routing without a plugin could change sides
        if not _asks_help(args):
            raise refused
        return App(config=config, pm=pm, broken_plugins=broken, config_error=refused)
    broken = []
    try:
        defaults = config_from_mapping({})
        pm = make_plugin_manager(defaults, broken=broken, eager=False)
    except ConfigError:  # an installed plugin wants settings the defaults lack
        raise error from None
    return App(config=defaults, pm=pm, broken_plugins=broken, config_error=error)


def _refusing(command: click.Command, error: ConfigError, *, top: bool = True) -> click.Command:
    """A copy of the command group whose commands, the top level's `doctor` aside, raise
    `error` if they run rather than show their help (`cost --since --help` reads --help as
    a date): none may act on the defaults that stand in for a config the user meant. A
    nested group (a plugin's) loses its own callback, which click runs before it reads a
    command's --help. The module's commands stay as they are, for the next `main`."""
    refusing = copy.copy(command)
    if isinstance(refusing, click.Group):
        if not top:
            refusing.callback = None
        refusing.commands = {
            name: sub if top and name == "doctor" else _refusing(sub, error, top=False)
            for name, sub in refusing.commands.items()
        }
        return refusing

    def refuse(*args: object, **kwargs: object) -> None:
        raise error

    refusing.callback = refuse
    return refusing


def _wants_json(args: list[str]) -> bool:
    """Whether `args` hold the --json flag, before click parses (an error may come first):
    not after `--` (`ask -- --json` asks about the word) nor as --config's value."""
    i = 0
    while i < len(args) and args[i] != "--":
        if args[i] == "--json":
            return True
        i += 2 if args[i] == "--config" else 1
    return False


def _asks_help(args: list[str]) -> bool:
    """Whether `args` may ask only for help: none at all, or -h/--help before any `--`."""
    ahead = args[: args.index("--")] if "--" in args else args
    return not args or "--help" in ahead or "-h" in ahead


def _warn_unused(error: ConfigError) -> int:
    """After the help shown in spite of `error` (`_app`): say why, once, and exit OK."""
    from devpulse.core.plugins import PluginLoadError  # noqa: PLC0415  # on this path only
    from devpulse.plugins.privacy.redact import redact  # noqa: PLC0415

    line = redact(" ".join(without_surrogates(str(error)).split()))
    shown = "leaves it out" if isinstance(error, PluginLoadError) else "is the packaged defaults'"
    with contextlib.suppress(OSError):
        click.echo(f"devpulse: warning: {line} (the help above {shown})", err=True)
    return ExitCode.OK


def _fail(message: str, code: ExitCode, as_json: bool) -> int:
    """Say why the command failed: one line on stderr, and under --json a JSON object on
    stdout too. A secret in the message (a server's error that echoes a key) is redacted."""
    _hold_stop_signals()  # a Ctrl-C now would cut the line short with a traceback
    from devpulse.plugins.privacy.redact import redact  # noqa: PLC0415  # on errors only

    line = redact(" ".join(without_surrogates(message).split()))  # argv bytes not UTF-8
    if as_json:
        try:
            emit({"status": "error", "error": line, "exit_code": int(code)})
        except OSError:  # stdout is gone: stderr may still be there
            _discard_stdout()
    with contextlib.suppress(OSError):  # stderr is gone too: the exit code is all there is
        click.echo(f"devpulse: error: {line}", err=True)
    return code


def _say(text: str) -> int:
    """Print `text` (the version, the help) on stdout; a stdout that is gone is an error."""
    try:
        click.echo(text)
        sys.stdout.flush()
    except OSError as exc:  # > /dev/full, or a reader that closed the pipe
        _discard_stdout()
        if isinstance(exc, BrokenPipeError):
            return _fail(CUT, ExitCode.PROBLEM, False)
        return _fail(_os_error(exc), ExitCode.PROBLEM, False)
    return ExitCode.OK


def _asks_version(args: list[str]) -> bool:
    """Whether click would only print the version: ``--version`` among the group's options,
    before any other eager option or a command. Anything unusual is left to click."""
    found = False
    i = 0
    while i < len(args):
        arg = args[i]
        if arg == "--config":
            if i + 1 == len(args):
                return False
            i += 1
        elif arg == "--version":
            found = True
        elif arg not in ("-v", "-vv", "-vvv", "--verbose") and not arg.startswith("--config="):
            # a command (click prints the version before reading it), help, or an error
            return found and not arg.startswith("-")
        i += 1
    return found


def _terminated(exc: BaseException) -> bool:
    """Whether SIGTERM stopped the command, not Ctrl-C: `Terminated`, or what `_Group` or
    click (an interrupt while it parses becomes `Abort`) raised from it."""
    return isinstance(exc, Terminated) or isinstance(exc.__cause__, Terminated)


def _stop(signum: int, frame: object) -> None:
    """The console script's SIGINT and SIGTERM handler: stop the command where it stands.

    From the first signal on, both are ignored until the command has wound down
    (`_hold_stop_signals`): `timeout -s INT` signals the process and then its group, and the
    second signal, tens of milliseconds later, would otherwise break off the handling of
    the first (the request's booking, the error line) with a traceback.
    """
    _hold_stop_signals()
    if signum == signal.SIGTERM:
        raise Terminated
    raise KeyboardInterrupt


def _hold_stop_signals() -> None:
    """Ignore SIGINT and SIGTERM until `run` writes the ledger, where `run` installed
    `_stop`: a host that calls `main` itself keeps its own handlers."""
    ours = [sig for sig in (signal.SIGINT, signal.SIGTERM) if signal.getsignal(sig) is _stop]
    if ours:
        _stopping_since[0] = time.monotonic()
    for sig in ours:
        signal.signal(sig, signal.SIG_IGN)


def _write_the_ledger() -> None:
    """Commit the ledger rows still queued, before exit, where a signal can end the wait.

    The wait lasts up to `ledger.busy_timeout_s` (30 s) while another process holds the
    ledger's lock. Whoever presses Ctrl-C then means it (`_stop_now`): the rows still queued
    are not written. The exit hook that would write them otherwise runs when Python no
    longer calls a handler, and an ignored signal could not end the wait.
    """
    writes = sys.modules.get("devpulse.core.writes")
    if writes is None:  # nothing was ever queued
        return
    try:  # the command's output goes out now: not after the wait, nor lost with it
        sys.stdout.flush()
    except (OSError, ValueError):  # a reader gone, or stdout closed
        _discard_stdout()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, _stop_now)
    try:
        writes.flush_all()
    finally:  # what is left of the exit runs with both ignored, as Python finishes
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, signal.SIG_IGN)


def _stop_now(signum: int, frame: object) -> None:
    """A signal while `_write_the_ledger` waits: exit at once, but not within
    `STOP_AGAIN_AFTER_S` of the first (the same signal, sent again to the group)."""
    if time.monotonic() - _stopping_since[0] < STOP_AGAIN_AFTER_S:
        return
    word, code = (
        ("terminated", ExitCode.TERMINATED)
        if signum == signal.SIGTERM
        else ("interrupted", ExitCode.INTERRUPTED)
    )
    with contextlib.suppress(OSError):  # no buffered stream: one may be mid-write
        os.write(2, f"devpulse: error: {word} while writing the ledger: stopped at once\n".encode())
    os._exit(code)


# How long after the first stop signal (or an error line) another is taken for the same one.
STOP_AGAIN_AFTER_S = 1.0
_stopping_since = [float("-inf")]  # when the command began to wind down: monotonic seconds


def _os_error(exc: OSError) -> str:
    where = f" ({exc.filename})" if exc.filename else ""
    return f"{exc.strerror or exc}{where}"


def _discard_stdout() -> None:
    """Point stdout at the null device, so that flushing it at exit raises nothing more."""
    try:
        null = os.open(os.devnull, os.O_WRONLY)
        os.dup2(null, sys.stdout.fileno())
        os.close(null)
    except (OSError, ValueError, AttributeError):  # not a real file (tests capture it)
        pass


def _command_name(args: list[str]) -> str | None:
    """The command `args` name (the first word that is not a group option), if any."""
    i = 0
    while i < len(args) and args[i] != "--":
        arg = args[i]
        if arg == "--config":
            i += 2
            continue
        if not arg.startswith("-"):
            return arg
        i += 1
    return None


def _peek_option(args: list[str], name: str) -> str | None:
    """Read a group option before click parses, since the config decides which commands
    exist; given more than once, the last one counts, as click has it."""
    found = None
    i = 0
    while i < len(args) and args[i] != "--":
        arg = args[i]
        if arg == name:
            if i + 1 >= len(args):
                raise ConfigError(f"{name} needs a value")
            found = args[i + 1]
            i += 1
        elif arg.startswith(name + "="):
            found = arg.split("=", 1)[1]
        i += 1
    if found is not None and not found.strip():
        raise ConfigError(f"{name}: give a file, not an empty name")
    return found


def _hold_stderr() -> None:
    """Started with stderr closed (`2>&-`), fd 2 is free: the next file opened (the ledger's
    SQLite file) would get it, and whatever then writes to stderr (a command's error line, a
    C library's message) would fail, or write into that file. /dev/null holds it instead:
    the error lines go nowhere, the report on stdout and the exit code still tell."""
    try:
        os.fstat(2)
    except OSError:
        fd = os.open(os.devnull, os.O_WRONLY)
        if fd != 2:
            os.dup2(fd, 2)
            os.close(fd)
        sys.stderr = open(2, "w", closefd=False)  # noqa: SIM115  # held to exit


def run() -> None:  # pragma: no cover - exercised through the console script
    # Here only, never in `main` or the library: signal handlers and the standard streams
    # belong to the process's owner, and only the console script owns its process.
    _hold_stderr()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, _stop)
    code = main()
    _write_the_ledger()
    sys.exit(code)

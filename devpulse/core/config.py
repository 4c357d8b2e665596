"""Configuration: the packaged defaults, a user's TOML merged over them, checked strictly.

Every mistake is a `ConfigError` whose one-line message names the file and the dotted key.
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import math
import os
import tomllib
import types
import typing
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, TypeVar

from devpulse.core.errors import ConfigError
from devpulse.core.types import PrivacyLevel, Side, TaskClass, choices

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class PrivacyRule:
    """A user's own detector; the same fields as the packaged rules."""

    id: str
    category: str
    pattern: str
    keywords: tuple[str, ...] = ()
    trigger: str | None = None
    level: PrivacyLevel | None = None
    group: int = 0
    groups: tuple[int, ...] = ()  # alternatives' own value groups: the first one set
    entropy: float | None = None
    validator: str | None = None
    priority: int = 2
    preceded_by: str | None = None
    exact_prefilter: bool = False
    long_prefilter: bool = False  # in a long text, runs only where its own pattern matches
    max_match_bytes: int | None = None  # a longer match is passed over, its groups unread
    max_text_bytes: int | None = None  # a longer text is not searched with this rule
    max_candidates: int | None = None  # its allowance of candidates, if under the scanner's
    quiet_overflow: bool = False  # past its allowance: stop, with no unverified finding
    not_after: str | None = None  # what the line before a value must not end with
    not_in_column: str | None = None  # a table column's name whose cells are not its values
    not_under: str | None = None  # what the line a value is indented under must not match
    reference: str = "user rule"


@dataclass(frozen=True, slots=True)
class PrivacyConfig:
    local_only_at: PrivacyLevel
    classifier: bool = True
    internal_domains: tuple[str, ...] = ()
    internal_packages: tuple[str, ...] = ()
    client_names: tuple[str, ...] = ()
    allowlist: tuple[str, ...] = ()
    disabled_rules: tuple[str, ...] = ()
    rules: tuple[PrivacyRule, ...] = ()


@dataclass(frozen=True, slots=True)
class ClassifyConfig:
    long_context_tokens: int
    default_task: TaskClass


@dataclass(frozen=True, slots=True)
class RoutingPolicy:
    """The settings in [routing] besides the table: how prompts without a task class route.

    `cloud_share` is the share of typical traffic, the hardest, that goes to the cloud; the
    difficulty threshold is `1 - cloud_share` (difficulty is a position in typical traffic).
    """

    cloud_share: float = 0.3

    @property
    def threshold(self) -> float:
        return 1.0 - self.cloud_share


@dataclass(frozen=True, slots=True)
class SideDefault:
    backend: str
    model: str


@dataclass(frozen=True, slots=True)
class RouteTarget:
    side: Side
    backend: str | None = None
    model: str | None = None


@dataclass(frozen=True, slots=True)
class BackendConfig:
    """One ``[backends.NAME]`` table.

    The core reads `side` (what the privacy invariant trusts), `kind`, `timeout_s` and
    `images`; every other key is the kind's own, kept in `options` for the kind to check
    when its backend is built (`devpulse.core.kinds`), since only the kind knows them.
    """

    side: Side
    kind: str | None = None
    timeout_s: float | None = None
    images: bool = True
    options: dict[str, Any] = field(default_factory=dict, metadata={"rest": True})

    @property
    def base_url(self) -> str | None:
        """The server's URL, for the kinds that have one (the bundled kinds all do)."""
        return _text(self.options.get("base_url"))

    @property
    def shown_url(self) -> str | None:
        """`base_url` fit to print: a password in it masked."""
        return None if self.base_url is None else shown_url(self.base_url)

    @property
    def api_key_env(self) -> str | None:
        """The environment variable that holds the API key; never the key itself."""
        return _text(self.options.get("api_key_env"))

    @property
    def keep_alive(self) -> str | None:
        return _text(self.options.get("keep_alive"))


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


# Anthropic bills prompt-cache reads at 0.1x the model's base input price and 5-minute cache
# writes at 1.25x (Anthropic's pricing page, https://www.anthropic.com/pricing, "Prompt
# caching"): a model's cache prices unless its [prices] entry names its own.
CACHE_READ_SHARE = 0.1
CACHE_WRITE_SHARE = 1.25


@dataclass(frozen=True, slots=True)
class Price:
    """US dollars per million tokens; prompt-cache reads and writes, unless given, are
    Anthropic's shares of the input price."""

    input: float
    output: float
    cache_read: float | None = None
    cache_write: float | None = None

    @property
    def cache_read_price(self) -> float:
        return self.input * CACHE_READ_SHARE if self.cache_read is None else self.cache_read

    @property
    def cache_write_price(self) -> float:
        return self.input * CACHE_WRITE_SHARE if self.cache_write is None else self.cache_write


@dataclass(frozen=True, slots=True)
class LedgerConfig:
    enabled: bool
    path: str
    local_usd_per_million_tokens: float
    # How long a write waits for another process's write lock before it fails (is retried).
    busy_timeout_s: float = 30.0


@dataclass(frozen=True, slots=True)
class ModelSource:
    """Where the memory preflight learns what a model needs: a GGUF file or a plain figure."""

    gguf: str | None = None
    need_mb: int | None = None
    ctx: int | None = None


@dataclass(frozen=True, slots=True)
class PreflightConfig:
    enabled: bool
    fit_ratio: float
    reserve_mb: int
    runtime_overhead_mb: int
    default_ctx: int
    kv_cache_type: str
    cache_ttl_s: float
    models: dict[str, ModelSource] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class FailoverConfig:
    max_attempts: int
    enabled: bool
    budget_s: float
    connect_timeout_s: float
    cloud_timeout_s: float
    local_timeout_s: float
    stall_timeout_s: float
    retries: int
    backoff_s: float
    max_retry_after_s: float
    breaker_threshold: int
    breaker_cooldown_s: float
    spend_limit_cooldown_s: float
    larger_context: dict[str, str] = field(default_factory=dict)
    # Per side, the backends to try in turn after one on that side fails, before the other
    # side's default: cloud anthropic -> cloud openai -> local.
    order: dict[Side, tuple[SideDefault, ...]] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class BabysitConfig:
    """The watchdog (`devpulse babysit`) and auto-clean before a local request."""

    target_free_mb: int
    interval_s: float
    hysteresis_mb: int
    confirm_s: float
    sample_every_s: float
    auto_clean: bool
    pins: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class InputConfig:
    """What a command reads from a file or stdin: at most `max_bytes`, else an error."""

    max_bytes: int


@dataclass(frozen=True, slots=True)
class Limits:
    """Seconds a backend may take: to connect, to the first chunk, and between chunks."""

    connect_s: float
    first_token_s: float
    stall_s: float


@dataclass(frozen=True, slots=True)
class Config:
    privacy: PrivacyConfig
    classify: ClassifyConfig
    local: SideDefault
    cloud: SideDefault
    routing: dict[TaskClass, RouteTarget]
    backends: dict[str, BackendConfig]
    preflight: PreflightConfig
    ledger: LedgerConfig
    prices: dict[str, Price]
    failover: FailoverConfig
    babysit: BabysitConfig
    input: InputConfig
    plugins: dict[str, Any] = field(default_factory=dict)
    # The [routing] keys that are settings rather than task classes (built from that table).
    policy: RoutingPolicy = field(default=RoutingPolicy(), metadata={"internal": True})
    # Where the config came from; set by the loader, never by the file (internal: no key).
    source: str = field(default="<defaults>", metadata={"internal": True})

    def side_default(self, side: Side) -> SideDefault:
        return self.local if side is Side.LOCAL else self.cloud

    def price(self, model: str) -> Price | None:
        """The price of `model`: the longest configured name that starts it."""
        matches = [name for name in self.prices if model.startswith(name)]
        return self.prices[max(matches, key=len)] if matches else None

    def limits(self, backend: str) -> Limits:
        """The time limits for `backend`: its own `timeout_s`, else its side's default.

        The stall limit between chunks is `failover.stall_timeout_s`, never longer than the
        first-token limit.
        """
        failover = self.failover
        declared = self.backends.get(backend)
        if declared is not None and declared.timeout_s is not None:
            first = declared.timeout_s
        elif declared is not None and declared.side is Side.CLOUD:
            first = failover.cloud_timeout_s
        else:
            first = failover.local_timeout_s
        return Limits(
            connect_s=min(failover.connect_timeout_s, first),
            first_token_s=first,
            stall_s=min(failover.stall_timeout_s, first),
        )

    def backend_side(self, backend: str) -> Side | None:
        """The side a backend is declared on, or None for a backend the config never named."""
        declared = self.backends.get(backend)
        return declared.side if declared else None


# Settings with a floor (counts, sizes, waits, prices); the failover time limits and
# preflight.fit_ratio have their own checks. A value below it would silently do nothing or
# something absurd (a negative wait, a circuit that opens before any failure).
MINIMUMS = {
    "classify.long_context_tokens": 1,
    "preflight.reserve_mb": 0,
    "preflight.runtime_overhead_mb": 0,
    "preflight.default_ctx": 1,
    "preflight.cache_ttl_s": 0,
    "failover.retries": 0,
    "failover.backoff_s": 0,
    "failover.max_retry_after_s": 0,
    "failover.breaker_threshold": 1,
    "failover.breaker_cooldown_s": 0,
    "failover.spend_limit_cooldown_s": 0,
    "ledger.local_usd_per_million_tokens": 0,
    "ledger.busy_timeout_s": 0,
    "input.max_bytes": 1,
}
# A config file is a few kilobytes; this bound only stops `--config /dev/zero` reading forever.
MAX_CONFIG_BYTES = 1024 * 1024


def default_path() -> Path:
    """Where a user's config lives when neither --config nor $DEVPULSE_CONFIG names one."""
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(Path.home(), ".config")
    return Path(base) / "devpulse" / "config.toml"


def load_config(path: str | os.PathLike[str] | None = None) -> Config:
    """Load the config: `path`, else $DEVPULSE_CONFIG, else the XDG path if it exists.

    With none of those, the packaged defaults alone; they work without any file.
    """
    explicit = path
    if path is None:
        named = os.environ.get("DEVPULSE_CONFIG", "")
        if named and not named.strip():  # as --config '' is: a file, or no setting at all
            raise ConfigError("$DEVPULSE_CONFIG: give a file, not an empty name (or unset it)")
        explicit = named or None
    chosen = Path(explicit) if explicit is not None else default_path()
    if explicit is None and not chosen.is_file():
        return config_from_mapping({})
    return config_from_mapping(read_toml(chosen), source=str(chosen))


def read_toml(chosen: Path) -> dict[str, Any]:
    """The TOML table in file `chosen`; a ConfigError if it is unreadable, not UTF-8, too
    large or not TOML."""
    try:
        with open(chosen, "rb") as fh:
            data = fh.read(MAX_CONFIG_BYTES + 1)
    except OSError as exc:
        raise ConfigError(f"cannot read config {chosen}: {exc.strerror or exc}") from None
    if len(data) > MAX_CONFIG_BYTES:
        raise ConfigError(f"cannot read config {chosen}: larger than {MAX_CONFIG_BYTES} bytes")
    try:
        text: str | None = data.decode("utf-8-sig")  # a byte-order mark is harmless
    except UnicodeDecodeError:
        text = None
    if text is None or "\0" in text:  # UTF-16 or a binary file: TOML text holds no NUL
        raise ConfigError(f"cannot read config {chosen}: not UTF-8 TOML")
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config {chosen} is not valid TOML: {exc}") from None


def config_from_mapping(user: Mapping[str, Any], *, source: str = "<defaults>") -> Config:
    """Merge `user` over the packaged defaults and check every key and type."""
    text = resources.files("devpulse").joinpath("default_config.toml").read_text("utf-8")
    merged = _merge(tomllib.loads(text), user)
    try:
        table, policy = _split_routing(merged.get("routing"))
        config: Config = dataclasses.replace(
            _build(Config, {**merged, "routing": table}, ""), policy=policy, source=source
        )
        _check_references(config)
    except ConfigError as exc:
        raise located(exc, source) from None
    return config


def located(error: ConfigError, source: str) -> ConfigError:
    """`error` with the config file it is about in front: ``config FILE: key: problem``."""
    where = f"config {source}" if source != "<defaults>" else "config"
    return ConfigError(f"{where}: {error}")


def parse_rules(entries: Any, key: str) -> tuple[PrivacyRule, ...]:
    """Check a list of rule tables (the packaged rule file uses the user's schema)."""
    rules: tuple[PrivacyRule, ...] = _build(tuple[PrivacyRule, ...], entries, key)
    return rules


def _split_routing(routing: Any) -> tuple[Any, RoutingPolicy]:
    """[routing] holds the table (a key per task class) and the policy's settings."""
    if not isinstance(routing, Mapping):
        return routing, RoutingPolicy()  # _build names the mistake
    names = {f.name for f in dataclasses.fields(RoutingPolicy)}
    table = {k: v for k, v in routing.items() if k not in names}
    policy: RoutingPolicy = _build(
        RoutingPolicy, {k: v for k, v in routing.items() if k in names}, "routing"
    )
    if not 0 <= policy.cloud_share <= 1:
        raise ConfigError("routing.cloud_share: must be from 0 to 1 (a share of requests)")
    return table, policy


def parse_table(tp: type[T], table: Any, key: str) -> T:
    """Check a plugin's or a backend kind's table against the dataclass `tp`.

    Each mistake is a `ConfigError` naming its dotted key under `key` (an unknown key, a
    wrong type, a missing required key), worded as the core's own config errors are.
    """
    built: T = _build(tp, table, key)
    return built


def _merge(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def _check_references(config: Config) -> None:
    for name, default in (("local", config.local), ("cloud", config.cloud)):
        _check_backend(config, f"{name}.backend", default.backend, Side(name))
    for task, target in config.routing.items():
        if target.backend is not None:
            _check_backend(config, f"routing.{task}.backend", target.backend, target.side)
    _check_failover(config)
    for name, backend in config.backends.items():  # the kind checks the rest of the table
        if backend.kind is not None and not backend.kind.strip():
            raise ConfigError(f"backends.{name}.kind: give a kind, not an empty one")
        if backend.timeout_s is not None:
            _seconds(backend.timeout_s, f"backends.{name}.timeout_s")
    if config.cloud.model and config.price(config.cloud.model) is None:
        raise ConfigError(f"prices: no price for the cloud model {config.cloud.model!r}")
    _check_babysit(config)
    if not 0 < config.preflight.fit_ratio <= 1:
        raise ConfigError("preflight.fit_ratio: must be above 0 and at most 1")
    for name, source in config.preflight.models.items():
        if (source.gguf is None) == (source.need_mb is None):
            raise ConfigError(f"preflight.models.{name}: give exactly one of gguf or need_mb")
    _check_minimums(config)
    _check_model_names(config)


def _check_minimums(config: Config) -> None:
    for key, least in MINIMUMS.items():
        section, name = key.split(".")
        value = getattr(getattr(config, section), name)
        if value < least:
            raise ConfigError(f"{key}: must be at least {least}")
        if key.endswith("_s") and value > MAX_SECONDS:
            raise ConfigError(f"{key}: must be at most {MAX_SECONDS:g} (a week)")
    for model, price in config.prices.items():
        if min(price.input, price.output, price.cache_read_price, price.cache_write_price) < 0:
            raise ConfigError(f"prices.{model}: a price cannot be below 0")
    for name, source in config.preflight.models.items():
        if source.need_mb is not None and source.need_mb < 1:
            raise ConfigError(f"preflight.models.{name}.need_mb: must be at least 1")
        if source.ctx is not None and source.ctx < 1:
            raise ConfigError(f"preflight.models.{name}.ctx: must be at least 1")


def _check_model_names(config: Config) -> None:
    """No empty model name: a backend would be asked for model ''."""
    names = [("local.model", config.local.model), ("cloud.model", config.cloud.model)]
    names += [
        (f"routing.{t}.model", r.model) for t, r in config.routing.items() if r.model is not None
    ]
    for model, larger in config.failover.larger_context.items():
        names += [("failover.larger_context", model), (f"failover.larger_context.{model}", larger)]
    names += [("preflight.models", name) for name in config.preflight.models]
    for key, name in names:
        if not name.strip():
            raise ConfigError(f"{key}: give a model name, not an empty one")


def shown_url(url: str) -> str:
    """`url` fit to print: the password of its user info (`https://user:pw@host`; a user
    name with no password, which may be a token, whole: `https://***@host`) and every
    value in its query string and fragment (`?key=sk-...`, `?sig=...`: gateways that take
    the key in the URL) masked as ``***``; query names kept. Text that is not a URL with a
    host is returned as it is."""
    try:
        parts = urllib.parse.urlsplit(url)
        password = parts.password
    except ValueError:  # not a URL urllib can read (a bad [IPv6]): hide all past a '?'
        return url.split("?", 1)[0] + ("?***" if "?" in url else "")
    if not parts.netloc:
        return url
    netloc = parts.netloc
    if "@" in netloc:  # a user name alone may be the key itself (https://TOKEN@host)
        user, host = netloc.rsplit("@", 1)
        netloc = f"{user.split(':', 1)[0]}:***@{host}" if password is not None else f"***@{host}"
    shown = parts._replace(
        netloc=netloc, query=_masked_values(parts.query), fragment=_masked_values(parts.fragment)
    )
    return url if shown == parts else urllib.parse.urlunsplit(shown)


def _masked_values(query: str) -> str:
    """`a=1&b=2` as `a=***&b=***`; a bare item (`?sk-...`) may be a key itself: `***`."""
    if not query:
        return query
    items = []
    for item in query.split("&"):
        name, equals, value = item.partition("=")
        if equals:
            items.append(f"{name}=***" if value else item)
        else:
            items.append("***" if item else item)
    return "&".join(items)


def endpoint(base_url: str, path: str) -> str:
    """`path` under `base_url`: joined to the base's path, before its query string, which is
    kept (``http://h/v1?key=k`` + ``/models`` is ``http://h/v1/models?key=k``)."""
    parts = urllib.parse.urlsplit(base_url)
    return urllib.parse.urlunsplit(parts._replace(path=parts.path.rstrip("/") + path, fragment=""))


def without_userinfo(url: str) -> tuple[str, str | None]:
    """`url` without its user info, and that user info as an HTTP Basic ``Authorization``
    header value (None when it has none), as httpx sends it: urllib would look the whole
    `user:pw@host` up as a host name."""
    import base64  # noqa: PLC0415  # only where a URL carries user info

    parts = urllib.parse.urlsplit(url)
    if "@" not in parts.netloc:
        return url, None
    host = parts.netloc.rsplit("@", 1)[1]
    user = urllib.parse.unquote(parts.username or "")
    password = urllib.parse.unquote(parts.password or "")
    token = base64.b64encode(f"{user}:{password}".encode()).decode("ascii")
    return urllib.parse.urlunsplit(parts._replace(netloc=host)), f"Basic {token}"


def is_http_url(url: str) -> bool:
    """An http(s) URL with a host and, if any, a numeric port; no spaces."""
    if url != url.strip() or any(c.isspace() for c in url):
        return False
    try:
        parts = urllib.parse.urlsplit(url)
        _ = parts.port  # raises on a port that is not a number
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname)


# The longest wait or interval a setting may name: a week. A longer one is a mistake, and
# past about 1e11 s a deadline no longer fits the platform's time type.
MAX_SECONDS = 7 * 24 * 3600.0
# The most attempts one request may make: each is a dispatch, a ledger row and a line of
# its error.
MAX_ATTEMPTS = 100


def _seconds(value: float, key: str) -> None:
    if not 0 < value <= MAX_SECONDS:
        raise ConfigError(f"{key}: must be above 0 and at most {MAX_SECONDS:g} (a week)")


def _check_babysit(config: Config) -> None:
    for key in ("interval_s", "confirm_s", "sample_every_s"):
        _seconds(getattr(config.babysit, key), f"babysit.{key}")
    for key in ("target_free_mb", "hysteresis_mb"):
        if getattr(config.babysit, key) < 0:
            raise ConfigError(f"babysit.{key}: must be at least 0")


def _check_failover(config: Config) -> None:
    for side, targets in config.failover.order.items():
        for i, target in enumerate(targets):
            key = f"failover.order.{side}[{i}]"
            _check_backend(config, f"{key}.backend", target.backend, side)
            if not target.model.strip():
                raise ConfigError(f"{key}.model: give a model name, not an empty one")
            if side is Side.CLOUD and config.price(target.model) is None:
                raise ConfigError(f"prices: no price for the cloud model {target.model!r} ({key})")
    if not 1 <= config.failover.max_attempts <= MAX_ATTEMPTS:
        raise ConfigError(f"failover.max_attempts: must be from 1 to {MAX_ATTEMPTS}")
    for key in (
        "budget_s",
        "connect_timeout_s",
        "cloud_timeout_s",
        "local_timeout_s",
        "stall_timeout_s",
    ):
        _seconds(getattr(config.failover, key), f"failover.{key}")


def _check_backend(config: Config, key: str, backend: str, side: Side) -> None:
    declared = config.backend_side(backend)
    if declared is None:
        known = ", ".join(sorted(config.backends))
        raise ConfigError(f"{key}: unknown backend {backend!r} (declared: {known})")
    if declared is not side:
        raise ConfigError(f"{key}: backend {backend!r} is {declared}, not {side}")


def _build(tp: Any, value: Any, key: str) -> Any:
    """Turn TOML data into `tp`, raising ConfigError that names `key` on any mismatch."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        (inner,) = [a for a in typing.get_args(tp) if a is not type(None)]
        return _build(inner, value, key)
    if tp is Any:
        return value
    if dataclasses.is_dataclass(tp):
        return _build_dataclass(tp, value, key)
    if origin is tuple:
        item_type = typing.get_args(tp)[0]
        items = _expect(value, list, "a list", key)
        return tuple(_build(item_type, v, f"{key}[{i}]") for i, v in enumerate(items))
    if origin is dict:
        key_type, value_type = typing.get_args(tp)
        mapping = _expect(value, Mapping, "a table", key)
        return {
            _build(key_type, k, _join(key, k)): _build(value_type, v, _join(key, k))
            for k, v in mapping.items()
        }
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return _build_enum(tp, value, key)
    if tp is bool:
        return _expect(value, bool, "true or false", key)
    if tp in (int, float):
        return _build_number(tp, value, key)
    if tp is str:
        return _expect(value, str, "a string", key)
    raise TypeError(f"config schema uses an unsupported type {tp!r}")  # pragma: no cover


def _build_number(tp: type, value: Any, key: str) -> int | float:
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{key}: expected an integer, got {_describe(value)}")
        if not -(2**63) <= value < 2**63:  # TOML's integers are 64-bit; tomllib reads any
            raise ConfigError(f"{key}: {value:.3g} is out of range for a 64-bit integer")
        return value
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(f"{key}: expected a number, got {_describe(value)}")
    if not math.isfinite(value):  # TOML has inf and nan; no setting means either
        raise ConfigError(f"{key}: expected a finite number, got {value}")
    return float(value)


def _build_dataclass(tp: Any, value: Any, key: str) -> Any:
    mapping = _expect(value, Mapping, "a table", key)
    hints, fields = _schema(tp)
    rest = [f.name for f in fields.values() if f.metadata.get("rest")]
    kwargs: dict[str, Any] = {}
    if rest:  # the keys a field keeps for someone else to check (a backend's kind)
        (into,) = rest
        fields = {name: f for name, f in fields.items() if name != into}  # the cached is shared
        kwargs[into] = {k: v for k, v in mapping.items() if k not in fields}
        mapping = {k: v for k, v in mapping.items() if k in fields}
    unknown = sorted(set(mapping) - set(fields))
    if unknown:
        raise ConfigError(
            f"{_join(key, unknown[0])}: unknown key (expected one of {', '.join(sorted(fields))})"
        )
    for name, f in fields.items():
        if name in mapping:
            kwargs[name] = _build(hints[name], mapping[name], _join(key, name))
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise ConfigError(f"{_join(key, name)}: missing required key")
    return tp(**kwargs)


@functools.cache
def _schema(tp: Any) -> tuple[dict[str, Any], dict[str, dataclasses.Field[Any]]]:
    """A dataclass's resolved field types and its fields that a config sets, read once: the
    types are strings (`from __future__ import annotations`), and resolving them each time
    made reading the packaged privacy rules' 255 tables take 0.1 s of every start-up."""
    fields = {f.name: f for f in dataclasses.fields(tp) if not f.metadata.get("internal")}
    return typing.get_type_hints(tp), fields


def _build_enum(tp: type[enum.Enum], value: Any, key: str) -> Any:
    text = _expect(value, str, "a string", key)
    try:
        return PrivacyLevel.parse(text) if tp is PrivacyLevel else tp(text)
    except ValueError:
        kinds: dict[type[enum.Enum], str] = {TaskClass: "task class", Side: "side"}
        kind = kinds.get(tp, "privacy level")
        raise ConfigError(
            f"{key}: unknown {kind} {text!r} (expected one of {', '.join(choices(tp))})"
        ) from None


def _expect(value: Any, tp: Any, what: str, key: str) -> Any:
    if not isinstance(value, tp):
        raise ConfigError(f"{key}: expected {what}, got {_describe(value)}")
    return value


def _describe(value: Any) -> str:
    names = {
        bool: "a boolean",
        int: "an integer",
        float: "a number",
        str: "a string",
        list: "a list",
    }
    return names.get(type(value), "a table" if isinstance(value, Mapping) else type(value).__name__)


def _join(key: str, name: object) -> str:
    return f"{key}.{name}" if key else str(name)

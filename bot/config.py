"""Typed settings: a TOML file for reference data and tuning, the environment for secrets."""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, model_validator

TOKEN_ENV = "MAHALLE_BOT_TOKEN"
WEBHOOK_SECRET_ENV = "MAHALLE_WEBHOOK_SECRET"
DATABASE_URL_ENV = "MAHALLE_DATABASE_URL"
CONFIG_PATH_ENV = "MAHALLE_CONFIG"

# Telegram and Bale tokens are "<bot id>:<secret>"; anything else is a typo or a placeholder.
_TOKEN_SHAPE = re.compile(r"^\d{5,}:[A-Za-z0-9_-]{20,}$")
_PLACEHOLDER_HINTS = ("your", "token", "changeme", "example", "xxxx", "123456:abc")

DOMAIN_KEYS = (
    "municipal", "utilities", "security", "social", "family", "cultural",
    "health", "welfare", "education", "participation", "other",
)  # fmt: skip

# The county key a one-county config ([county]) gets.
SINGLE_COUNTY = "main"

TOKEN_HELP = (
    f"{TOKEN_ENV} is not set. Get a token from @BotFather in Telegram (or @botfather in Bale): "
    f"send /newbot, pick a name, copy the token it gives you, then run "
    f"'export {TOKEN_ENV}=<the token>' and start again."
)


class ConfigError(Exception):
    """A setting is missing or wrong; the message names the key and the problem in one line."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TelegramSettings(_Section):
    token: SecretStr | None = None
    base_url: str = "https://api.telegram.org/bot"
    base_file_url: str = "https://api.telegram.org/file/bot"
    mode: Literal["polling", "webhook"] = "polling"
    webhook_url: str = ""
    webhook_listen: str = "127.0.0.1"
    webhook_port: int = Field(default=8443, ge=1, le=65535)
    webhook_secret: SecretStr | None = None
    rate_limit: bool = True
    # Start of deep links to the bot: https://t.me/ on Telegram, https://ble.ir/ on Bale.
    deep_link_base: str = "https://t.me/"

    @model_validator(mode="after")
    def _webhook_needs_url_and_secret(self) -> TelegramSettings:
        if self.mode == "webhook":
            if not self.webhook_url.startswith("https://"):
                raise ValueError("webhook_url must be an https:// address in webhook mode")
            if self.webhook_secret is None:
                raise ValueError(f"webhook mode needs a secret in {WEBHOOK_SECRET_ENV}")
        return self


class DatabaseSettings(_Section):
    url: str = "sqlite+aiosqlite:///mahalle.db"


class BotSettings(_Section):
    language: Literal["fa", "en"] = "fa"
    reports_per_hour: int = Field(default=5, ge=1, le=1000)
    # New reports a minute from everyone together; above it, confirming waits a minute (the
    # draft is kept). A storm evening is a few thousand an hour; a flood of fake accounts is not.
    reports_per_minute_all: int = Field(default=300, ge=1)
    admin_chat_id: int | None = None
    # Messages a minute from one person (in a private chat, or in a group where each member
    # counts alone); beyond it the bot says "slow down" once and ignores the rest of that minute.
    # Coordinators are not limited; button presses have their own limit.
    updates_per_minute: int = Field(default=30, ge=1, le=10000)
    # Updates of different chats a process handles at once (each chat's in turn), on PostgreSQL;
    # each holds a pooled connection. SQLite handles one at a time.
    concurrent_updates: int = Field(default=16, ge=1, le=64)


class TriageSettings(_Section):
    # Below this confidence a report goes to the coordinator's triage queue instead of an agency.
    threshold: float = Field(default=0.75, ge=0, le=1)
    # Tehran hour at which the model is retrained from shipped data plus corrections.
    retrain_hour: int = Field(default=3, ge=0, le=23)
    # Where the trained model is kept; `mahalle triage retrain` writes it, running bots reload it.
    model_path: Path = Path("triage-model.pkl")


class OutboxSettings(_Section):
    # Run the delivery worker inside `mahalle run` (off only in tests and tools).
    worker: bool = True
    # Seconds between looks at the outbox when nothing woke the worker.
    poll_seconds: float = Field(default=1.0, gt=0, le=60)
    # Longest back-off between attempts after network errors, in seconds.
    max_backoff_seconds: int = Field(default=3600, ge=1)
    # Messages sent at once, on PostgreSQL (SQLite: one), each to a different chat and holding a
    # pooled connection for one round trip to Telegram. One at a time, a Bot API 100 ms away
    # caps the outbox at ~8 a second.
    sends_at_once: int = Field(default=8, ge=1, le=30)


class StaffSettings(_Section):
    # Days an agency invite link stays valid.
    invite_days: int = Field(default=7, ge=1, le=90)
    # Minutes a pressed ask / resolve / reject waits for its typed question, note or reason;
    # later, the button must be pressed again.
    input_minutes: int = Field(default=15, ge=1, le=1440)


class BroadcastSettings(_Section):
    # Messages a second; Telegram allows about 30 in bulk.
    rate_per_second: float = Field(default=25, gt=0, le=30)
    # Attempts per recipient after time-outs and server errors before giving up on them.
    max_attempts: int = Field(default=5, ge=1, le=20)
    # The coordinator's progress message is edited at most this often.
    progress_every_seconds: float = Field(default=5, ge=1)
    # Recipients sent to at once, on PostgreSQL (SQLite: one), each holding a pooled connection
    # for one round trip to Telegram. One at a time, a Bot API 100 ms away caps the rate at ~9.
    sends_at_once: int = Field(default=8, ge=1, le=30)


class DeadlineRule(_Section):
    # Hours a forwarded case may wait for "accept" before the agency is reminded.
    accept_hours: float | None = Field(default=None, gt=0)
    # Hours after forwarding at which an unaccepted case is escalated to the coordinators.
    escalate_hours: float | None = Field(default=None, gt=0)
    # Days an accepted case may stay unresolved before it is escalated.
    resolve_days: float | None = Field(default=None, gt=0)


class DeadlineSettings(_Section):
    accept_hours: float = Field(default=24, gt=0)
    escalate_hours: float = Field(default=48, gt=0)
    resolve_days: float = Field(default=7, gt=0)
    # Count only working time: Saturday to Wednesday, Thursday until noon, no holidays.
    working_days: bool = False
    # Jalali dates (YYYY/MM/DD) that are public holidays.
    holidays: list[str] = Field(default_factory=list)
    # Per-domain overrides, e.g. [deadlines.domains.security] accept_hours = 2
    domains: dict[str, DeadlineRule] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _holidays_are_jalali_dates(self) -> DeadlineSettings:
        for day in self.holidays:
            if not re.fullmatch(r"\d{4}/\d{1,2}/\d{1,2}", day):
                raise ValueError(f"holiday {day!r} is not a Jalali date like 1405/01/01")
        return self

    def rule_for(self, domain: str | None) -> tuple[float, float, float]:
        """(accept hours, escalate hours, resolve days) for a domain, defaults filled in."""
        rule = self.domains.get(domain or "", DeadlineRule())
        return (
            rule.accept_hours or self.accept_hours,
            rule.escalate_hours or self.escalate_hours,
            rule.resolve_days or self.resolve_days,
        )


class ReportSettings(_Section):
    # Tehran time of the daily digest to the coordinators, "HH:MM".
    digest_time: str = Field(default="08:00", pattern=r"^\d{2}:\d{2}$")
    # Tehran time on Saturdays of the weekly report to the council.
    weekly_time: str = Field(default="09:00", pattern=r"^\d{2}:\d{2}$")


class PrivacySettings(_Section):
    # Days after a case is closed or rejected that the reporter's phone number is kept.
    contact_retention_days: int = Field(default=90, ge=1)


class BoundingBox(_Section):
    min_lat: float = Field(ge=-90, le=90)
    min_lon: float = Field(ge=-180, le=180)
    max_lat: float = Field(ge=-90, le=90)
    max_lon: float = Field(ge=-180, le=180)

    def contains(self, latitude: float, longitude: float) -> bool:
        """Whether a point lies inside the box (edges included)."""
        return (
            self.min_lat <= latitude <= self.max_lat and self.min_lon <= longitude <= self.max_lon
        )


class NeighbourhoodSettings(_Section):
    key: str = Field(pattern=r"^[a-z0-9_-]+$")
    name: str = Field(min_length=2)


class DistrictSettings(_Section):
    key: str = Field(pattern=r"^[a-z0-9_-]+$")
    name: str = Field(min_length=2)
    neighbourhoods: list[NeighbourhoodSettings] = Field(min_length=1)


class AgencySettings(_Section):
    # Unique in the whole deployment.
    key: str = Field(pattern=r"^[a-z0-9_-]+$")
    name: str = Field(min_length=2)
    chat_id: int | None = None
    # Which of the agencies named in [[domains]] this one is in its county; the key by default
    # (one county), e.g. key = "rey-municipality", kind = "municipality" with several.
    kind: str = ""

    @property
    def role(self) -> str:
        """The [[domains]] agency this one stands for in its county."""
        return self.kind or self.key


class CountySettings(_Section):
    # Identifies the county; a one-county deployment's is "main".
    key: str = Field(default=SINGLE_COUNTY, pattern=r"^[a-z0-9_-]+$")
    name: str = Field(min_length=2)
    bounding_box: BoundingBox | None = None
    coordinators: list[int] = Field(default_factory=list)
    coordinator_chat_id: int | None = None
    # The council's chat for the weekly report; none: the coordinators get it.
    council_chat_id: int | None = None
    districts: list[DistrictSettings] = Field(min_length=1)
    agencies: list[AgencySettings] = Field(min_length=1)

    def coordinator_chats(self) -> list[int]:
        """The coordinators' group, or each coordinator's private chat when there is none."""
        return [self.coordinator_chat_id] if self.coordinator_chat_id else list(self.coordinators)

    def agency_for(self, role: str) -> AgencySettings | None:
        """This county's agency standing for a [[domains]] agency."""
        return next((agency for agency in self.agencies if agency.role == role), None)


def _repeated(keys: list[str]) -> str:
    return ", ".join(sorted({key for key in keys if keys.count(key) > 1}))


class DomainSettings(_Section):
    key: str
    title: str = Field(min_length=2)
    agency: str


class Settings(_Section):
    telegram: TelegramSettings = Field(default_factory=TelegramSettings)
    database: DatabaseSettings = Field(default_factory=DatabaseSettings)
    bot: BotSettings = Field(default_factory=BotSettings)
    triage: TriageSettings = Field(default_factory=TriageSettings)
    outbox: OutboxSettings = Field(default_factory=OutboxSettings)
    staff: StaffSettings = Field(default_factory=StaffSettings)
    broadcast: BroadcastSettings = Field(default_factory=BroadcastSettings)
    deadlines: DeadlineSettings = Field(default_factory=DeadlineSettings)
    reports: ReportSettings = Field(default_factory=ReportSettings)
    privacy: PrivacySettings = Field(default_factory=PrivacySettings)
    # One county ([county] with top-level [[agencies]] in the file) or several ([[counties]]).
    counties: list[CountySettings] = Field(min_length=1)
    domains: list[DomainSettings]

    @model_validator(mode="before")
    @classmethod
    def _one_county_form(cls, raw: Any) -> Any:
        """`[county]` + `[[agencies]]` (+ `[reports] council_chat_id`) is a list of one county."""
        if not isinstance(raw, dict) or "county" not in raw:
            if isinstance(raw, dict) and "agencies" in raw:
                raise ValueError("with [[counties]], list each county's agencies inside it")
            return raw
        if "counties" in raw:
            raise ValueError("use either [county] or [[counties]], not both")
        raw = dict(raw)
        county = dict(raw.pop("county"))
        county.setdefault("agencies", raw.pop("agencies", []))
        reports = dict(raw.get("reports", {}))
        if "council_chat_id" in reports:
            county.setdefault("council_chat_id", reports.pop("council_chat_id"))
            raw["reports"] = reports
        raw["counties"] = [county]
        return raw

    @model_validator(mode="after")
    def _domains_complete_and_routed(self) -> Settings:
        keys = [d.key for d in self.domains]
        missing = [k for k in DOMAIN_KEYS if k not in keys]
        unknown = [k for k in keys if k not in DOMAIN_KEYS]
        if missing or unknown or len(keys) != len(set(keys)):
            raise ValueError(
                f"domains must list each of {', '.join(DOMAIN_KEYS)} once"
                + (f"; missing: {', '.join(missing)}" if missing else "")
                + (f"; unknown: {', '.join(unknown)}" if unknown else "")
            )
        for county in self.counties:
            for domain in self.domains:
                if county.agency_for(domain.agency) is None:
                    where = f" in county {county.key!r}" if len(self.counties) > 1 else ""
                    raise ValueError(
                        f"domain {domain.key!r} names unknown agency {domain.agency!r}{where}"
                    )
        return self

    @model_validator(mode="after")
    def _keys_unique(self) -> Settings:
        districts = [d for county in self.counties for d in county.districts]
        for kind, keys in (
            ("county", [county.key for county in self.counties]),
            ("district", [d.key for d in districts]),
            ("neighbourhood", [n.key for d in districts for n in d.neighbourhoods]),
            ("agency", [a.key for county in self.counties for a in county.agencies]),
        ):
            if repeated := _repeated(keys):
                raise ValueError(f"{kind} keys must be unique, repeated: {repeated}")
        for county in self.counties:
            if repeated := _repeated([agency.role for agency in county.agencies]):
                raise ValueError(f"county {county.key!r} has two agencies of kind {repeated}")
        return self

    @property
    def agencies(self) -> list[AgencySettings]:
        """Every agency of every county."""
        return [agency for county in self.counties for agency in county.agencies]

    @property
    def coordinators(self) -> set[int]:
        """Everyone who coordinates some county."""
        return {user for county in self.counties for user in county.coordinators}

    def county_named(self, key: str | None) -> CountySettings:
        """The county with this key (the first when the key is unknown or None)."""
        return next((county for county in self.counties if county.key == key), self.counties[0])

    def case_filter_county(self, county_key: str | None) -> str | None:
        """The county to narrow cases and people to: none when the deployment has one."""
        return county_key if len(self.counties) > 1 else None

    def county_of_coordinator(self, user_id: int) -> CountySettings | None:
        """The county this person coordinates, if any (the first, should they be in several)."""
        return next((c for c in self.counties if user_id in c.coordinators), None)

    def county_of_agency(self, agency_key: str) -> CountySettings | None:
        """The county an agency belongs to."""
        return next(
            (c for c in self.counties if any(a.key == agency_key for a in c.agencies)), None
        )

    def require_token(self) -> str:
        """The bot token, or a ConfigError that tells a newcomer how to get one."""
        if self.telegram.token is None:
            raise ConfigError(TOKEN_HELP)
        return self.telegram.token.get_secret_value()


def check_token(token: str) -> str:
    """Refuse placeholder and malformed tokens before they reach the network."""
    lowered = token.lower()
    if any(hint in lowered for hint in _PLACEHOLDER_HINTS) or not _TOKEN_SHAPE.match(token):
        raise ConfigError(
            f"{TOKEN_ENV}: this does not look like a real bot token "
            "(expected '<digits>:<at least 20 letters, digits, _ or ->' from @BotFather)"
        )
    return token


def _apply_environment(raw: dict[str, Any], environ: Mapping[str, str]) -> None:
    """Secrets only ever come from the environment; the database URL may too."""
    telegram = raw.setdefault("telegram", {})
    for key in ("token", "webhook_secret"):
        if key in telegram:
            raise ConfigError(
                f"telegram.{key}: secrets must not be written in the config file; "
                f"set MAHALLE_{'BOT_TOKEN' if key == 'token' else 'WEBHOOK_SECRET'} instead"
            )
    if token := environ.get(TOKEN_ENV, "").strip():
        telegram["token"] = check_token(token)
    if secret := environ.get(WEBHOOK_SECRET_ENV, "").strip():
        telegram["webhook_secret"] = secret
    if url := environ.get(DATABASE_URL_ENV, "").strip():
        raw.setdefault("database", {})["url"] = url


def _describe(error: ValidationError) -> str:
    first = error.errors()[0]
    where = ".".join(str(part) for part in first["loc"]) or "config"
    extra = f" (and {error.error_count() - 1} more)" if error.error_count() > 1 else ""
    return f"{where}: {first['msg']}{extra}"


def load_settings(path: str | Path, *, environ: Mapping[str, str] | None = None) -> Settings:
    """Read the TOML file at `path`, overlay the environment and validate everything."""
    environ = os.environ if environ is None else environ
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None
    _apply_environment(raw, environ)
    try:
        return Settings.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(f"config {path}: {_describe(exc)}") from None


def default_config_path(environ: Mapping[str, str] | None = None) -> Path:
    """`$MAHALLE_CONFIG`, else ./config.toml, else the shipped example."""
    environ = os.environ if environ is None else environ
    if configured := environ.get(CONFIG_PATH_ENV):
        return Path(configured)
    local = Path("config.toml")
    return (
        local if local.exists() else Path(__file__).resolve().parent.parent / "config.example.toml"
    )

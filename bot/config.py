"""Typed settings: a TOML file for reference data and tuning, the environment for secrets."""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal, NamedTuple
from urllib.parse import urlsplit

import jdatetime
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

TOKEN_ENV = "MAHALLE_BOT_TOKEN"
WEBHOOK_SECRET_ENV = "MAHALLE_WEBHOOK_SECRET"
DATABASE_URL_ENV = "MAHALLE_DATABASE_URL"
CONFIG_PATH_ENV = "MAHALLE_CONFIG"

# The webhook secret is all that tells Telegram's calls from anyone else's: long enough not to
# be guessed (openssl rand -hex 32 gives 64 characters).
WEBHOOK_SECRET_MIN_LENGTH = 32

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


Platform = Literal["telegram", "bale"]

# What each messenger's deployment gets where the operator set nothing: its Bot API server,
# and where deep links to a bot start (https://ble.ir/<bot>?start=… on Bale).
PLATFORM_DEFAULTS: dict[str, dict[str, str]] = {
    "telegram": {
        "base_url": "https://api.telegram.org/bot",
        "base_file_url": "https://api.telegram.org/file/bot",
        "deep_link_base": "https://t.me/",
    },
    "bale": {
        "base_url": "https://tapi.bale.ai/bot",
        "base_file_url": "https://tapi.bale.ai/file/bot",
        "deep_link_base": "https://ble.ir/",
    },
}
# A host that gives away which messenger an address belongs to.
_PLATFORM_HOSTS = {"telegram": ("api.telegram.org", "t.me/"), "bale": ("bale.ai", "ble.ir/")}
# Bale posts webhooks only to these ports of an https:// address.
BALE_WEBHOOK_PORTS = (443, 88)
# Bale sends no secret header: the secret is a path segment, so it must be one.
_PATH_SECRET = re.compile(r"^[A-Za-z0-9_-]+$")


class WebhookRoute(NamedTuple):
    """Where the webhook server listens, the address setWebhook registers, the header secret."""

    url_path: str
    webhook_url: str
    secret_token: str | None


def infer_platform(base_url: str) -> Platform:
    """The messenger a Bot API address belongs to: Bale's servers are under bale.ai."""
    return "bale" if "bale.ai" in base_url.lower() else "telegram"


class TelegramSettings(_Section):
    # "telegram" or "bale"; inferred from base_url when not set. Defaults below follow it.
    platform: Platform = "telegram"
    token: SecretStr | None = None
    base_url: str = PLATFORM_DEFAULTS["telegram"]["base_url"]
    base_file_url: str = PLATFORM_DEFAULTS["telegram"]["base_file_url"]
    # Polling on both messengers unless set: nothing to expose, and no secret to carry.
    mode: Literal["polling", "webhook"] = "polling"
    webhook_url: str = ""
    webhook_listen: str = "127.0.0.1"
    webhook_port: int = Field(default=8443, ge=1, le=65535)
    webhook_secret: SecretStr | None = None
    rate_limit: bool = True
    # Where the webhook server takes this bot's updates; each bot of several has its own.
    webhook_path: str = Field(default="telegram", pattern=r"^telegram(/[a-z0-9_-]+)?$")
    # Start of deep links to the bot: https://t.me/ on Telegram, https://ble.ir/ on Bale.
    deep_link_base: str = PLATFORM_DEFAULTS["telegram"]["deep_link_base"]

    @model_validator(mode="before")
    @classmethod
    def _platform_defaults(cls, raw: Any) -> Any:
        """Settle the platform (set, or read from base_url) and fill in its defaults for every
        key the operator left out."""
        if not isinstance(raw, dict):
            return raw
        raw = dict(raw)
        platform = raw.get("platform") or infer_platform(str(raw.get("base_url", "")))
        if platform not in PLATFORM_DEFAULTS:
            return raw  # the Literal refuses it, naming the key
        raw["platform"] = platform
        for key, value in PLATFORM_DEFAULTS[platform].items():
            raw.setdefault(key, value)
        return raw

    @model_validator(mode="after")
    def _bale_fits_bale(self) -> TelegramSettings:
        """Refuse a Bale config that cannot work: addresses of the other messenger, or webhooks
        without a usable secret path or on a port Bale does not post to."""
        other = "telegram" if self.platform == "bale" else "bale"
        for key in ("base_url", "base_file_url", "deep_link_base"):
            value = str(getattr(self, key)).lower()
            if any(host in value for host in _PLATFORM_HOSTS[other]):
                raise ValueError(
                    f"{key} points at {other.title()} while platform is "
                    f"{self.platform!r}; leave it out to get "
                    f"{PLATFORM_DEFAULTS[self.platform][key]}"
                )
        if self.platform != "bale" or self.mode != "webhook":
            return self
        secret = self.webhook_secret.get_secret_value() if self.webhook_secret else ""
        if not _PATH_SECRET.match(secret):
            raise ValueError(
                f"mode = 'webhook' on Bale needs a secret path: set {WEBHOOK_SECRET_ENV} to "
                "letters, digits, _ and - (Bale sends no secret header), or use polling"
            )
        port = urlsplit(self.webhook_url).port or 443
        if port not in BALE_WEBHOOK_PORTS:
            raise ValueError(f"webhook_url: Bale posts webhooks only to port 443 or 88, not {port}")
        return self

    @model_validator(mode="after")
    def _webhook_needs_url_and_secret(self) -> TelegramSettings:
        if self.mode == "webhook":
            if not self.webhook_url.startswith("https://"):
                raise ValueError("webhook_url must be an https:// address in webhook mode")
            if self.webhook_secret is None:
                raise ValueError(f"webhook mode needs a secret in {WEBHOOK_SECRET_ENV}")
        return self

    def webhook_route(self) -> WebhookRoute:
        """How the built-in webhook server listens and what setWebhook is told. Telegram: path
        /telegram, the secret in the header it sends. Bale sends no header: the server listens
        at /telegram/<secret> alone and setWebhook gets that address, without secret_token."""
        secret = self.webhook_secret.get_secret_value() if self.webhook_secret else None
        if self.platform == "bale" and secret:
            return WebhookRoute(
                f"{self.webhook_path}/{secret}", f"{self.webhook_url.rstrip('/')}/{secret}", None
            )
        return WebhookRoute(self.webhook_path, self.webhook_url, secret)


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
    threshold: float = Field(default=0.80, ge=0, le=1)
    # Below the threshold the reporter is asked which kind of problem it is; unanswered this
    # many minutes, the case goes to the coordinators' triage queue.
    answer_wait_minutes: int = Field(default=30, ge=1, le=1440)
    # Tehran hour at which the model is retrained from shipped data plus corrections.
    retrain_hour: int = Field(default=3, ge=0, le=23)
    # Where the trained model is kept: `mahalle db upgrade` writes it when missing, `mahalle triage
    # retrain` and the nightly job rewrite it, running bots reload it.
    model_path: Path = Path("triage-model.npz")


class OutboxSettings(_Section):
    # Run the delivery worker inside `mahalle run` (off only in tests and tools).
    worker: bool = True
    # Seconds between looks at the outbox when nothing woke the worker.
    poll_seconds: float = Field(default=1.0, gt=0, le=60)
    # Longest back-off between attempts after network errors, in seconds.
    max_backoff_seconds: int = Field(default=3600, ge=1)
    # Failed attempts (time-outs, server errors, floods without retry_after) after which a
    # message is given up and the coordinators are told, as for a chat that refused it: with
    # the default back-off, about a day of trying.
    max_attempts: int = Field(default=30, ge=1, le=1000)
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


# A Tehran time of day, "HH:MM" (00:00 to 23:59).
_CLOCK = r"^([01]\d|2[0-3]):[0-5]\d$"


def _is_jalali_date(day: str) -> bool:
    """Whether '1405/12/30' names a day that exists."""
    year, month, number = (int(part) for part in day.split("/"))
    try:
        jdatetime.date(year, month, number)
    except ValueError:
        return False
    return True


class DeadlineRule(_Section):
    # Hours a forwarded case may wait for "accept" before the agency is reminded.
    accept_hours: float | None = Field(default=None, gt=0)
    # Hours after forwarding at which an unaccepted case is escalated to the coordinators.
    escalate_hours: float | None = Field(default=None, gt=0)
    # Days an accepted case may stay unresolved before it is escalated.
    resolve_days: float | None = Field(default=None, gt=0)


class DeadlineSettings(_Section):
    # Hours and days below are working hours and working days when `working_days` is on.
    accept_hours: float = Field(default=24, gt=0)
    escalate_hours: float = Field(default=48, gt=0)
    resolve_days: float = Field(default=7, gt=0)
    # Count only working time: office hours of Saturday to Wednesday and Thursday morning,
    # without national holidays and the local ones below. Reminders then wait for office hours.
    working_days: bool = False
    # Office hours, Tehran time "HH:MM"; a Thursday ending no later than work starts is a day off.
    work_starts: str = Field(default="07:30", pattern=_CLOCK)
    work_ends: str = Field(default="14:30", pattern=_CLOCK)
    thursday_ends: str = Field(default="12:00", pattern=_CLOCK)
    # Iran's public holidays (solar and lunar) from the `holidays` package; off: only the local.
    national_holidays: bool = True
    # Extra local days off, Jalali dates (YYYY/MM/DD), on top of the national holidays.
    holidays: list[str] = Field(default_factory=list)
    # Domains whose escalations reach the coordinators at any hour, not only in office hours.
    urgent_domains: list[str] = Field(default_factory=lambda: ["security", "family"])
    # Per-domain overrides, e.g. [deadlines.domains.security] accept_hours = 2
    domains: dict[str, DeadlineRule] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _holidays_are_jalali_dates(self) -> DeadlineSettings:
        for day in self.holidays:
            if not re.fullmatch(r"\d{4}/\d{1,2}/\d{1,2}", day) or not _is_jalali_date(day):
                raise ValueError(f"holiday {day!r} is not a Jalali date like 1405/01/01")
        return self

    @model_validator(mode="after")
    def _office_hours_in_order(self) -> DeadlineSettings:
        if self.work_ends <= self.work_starts:
            raise ValueError(f"work_ends {self.work_ends} must be later than work_starts")
        if self.thursday_ends > self.work_ends:
            raise ValueError(f"thursday_ends {self.thursday_ends} must not be after work_ends")
        return self

    @model_validator(mode="after")
    def _urgent_domains_exist(self) -> DeadlineSettings:
        unknown = [key for key in self.urgent_domains if key not in DOMAIN_KEYS]
        if unknown:
            raise ValueError(f"urgent_domains: unknown domain {', '.join(unknown)}")
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
    # Days after a case's last activity (any status) that the reporter's phone number is kept.
    contact_retention_days: int = Field(default=90, ge=1)
    # Days a resolved case waits for its reporter's "was it fixed?" before it closes itself.
    close_resolved_after_days: int = Field(default=7, ge=1)
    # Days an untouched half-written report (and the conversation it belongs to) is kept.
    draft_expiry_days: int = Field(default=7, ge=1)


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


# The longest agency or domain key: buttons carry one with a case or person's number and a
# signature, within Telegram's 64 bytes of callback data (`task-to:<case>:<agency>:<signature>`).
KEY_LIMIT = 32


class AgencySettings(_Section):
    # Unique in the whole deployment.
    key: str = Field(pattern=r"^[a-z0-9_-]+$", max_length=KEY_LIMIT)
    name: str = Field(min_length=2)
    chat_id: int | None = None
    # Which of the agencies named in [[domains]] this one is in its county; the key by default
    # (one county), e.g. key = "rey-municipality", kind = "municipality" with several.
    kind: str = ""

    @property
    def role(self) -> str:
        """The [[domains]] agency this one stands for in its county."""
        return self.kind or self.key


class CouncilMember(_Section):
    # The member's Telegram/Bale user id; they get the agenda and weekly report in private.
    id: int
    role: Literal["chair", "secretary", "member", "civil-society"] = "member"
    name: str = ""


class CountySettings(_Section):
    # Identifies the county; a one-county deployment's is "main".
    key: str = Field(default=SINGLE_COUNTY, pattern=r"^[a-z0-9_-]+$")
    name: str = Field(min_length=2)
    bounding_box: BoundingBox | None = None
    coordinators: list[int] = Field(default_factory=list)
    coordinator_chat_id: int | None = None
    # The council's chat for the weekly report; none: the coordinators get it.
    council_chat_id: int | None = None
    # The council's members ([[county.council_members]] or council_members = [{id=…, role=…}];
    # a bare user id is a member): they read the handbook and confirm each new version, get the
    # agenda and the weekly report.
    council_members: list[CouncilMember] = Field(default_factory=list)

    @field_validator("council_members", mode="before")
    @classmethod
    def _bare_ids_are_members(cls, value: Any) -> Any:
        """`council_members = [111, 222]` names members by id alone."""
        if isinstance(value, list):
            return [{"id": item} if isinstance(item, int) else item for item in value]
        return value

    @property
    def council_ids(self) -> list[int]:
        """The council members' user ids."""
        return [member.id for member in self.council_members]

    districts: list[DistrictSettings] = Field(min_length=1)
    agencies: list[AgencySettings] = Field(min_length=1)

    def named_chats(self) -> set[int]:
        """Every chat and person this county's settings name: agency groups, coordinators and
        their group, the council's chat and members."""
        chats = {a.chat_id for a in self.agencies if a.chat_id is not None}
        chats |= {*self.coordinators, *self.council_ids}
        chats |= {c for c in (self.coordinator_chat_id, self.council_chat_id) if c is not None}
        return chats

    def coordinator_chats(self) -> list[int]:
        """The coordinators' group, or each coordinator's private chat when there is none."""
        return [self.coordinator_chat_id] if self.coordinator_chat_id else list(self.coordinators)

    def setup_gaps(self) -> list[str]:
        """What is not configured yet and what happens to reports meanwhile, one line each, for
        the operator at start-up."""
        gaps = []
        silent = [a.key for a in self.agencies if a.chat_id is None]
        if silent:
            gaps.append(
                f"county {self.key}: no chat_id for {len(silent)} of {len(self.agencies)} "
                f"agencies ({', '.join(silent)}); their reports go to the coordinators' triage "
                "queue instead (send /chatid in each agency's group to get its id)"
            )
        if not self.coordinator_chats():
            gaps.append(
                f"county {self.key}: no coordinators and no coordinator_chat_id; reports in the "
                "triage queue wait in the database unseen (their residents see them as waiting "
                "for an agency) until [county] coordinators is set"
            )
        return gaps

    def agency_for(self, role: str) -> AgencySettings | None:
        """This county's agency standing for a [[domains]] agency."""
        return next((agency for agency in self.agencies if agency.role == role), None)


def _repeated(keys: list[str]) -> str:
    return ", ".join(sorted({key for key in keys if keys.count(key) > 1}))


class DomainSettings(_Section):
    key: str = Field(min_length=1, max_length=KEY_LIMIT)
    title: str = Field(min_length=2)
    agency: str


class HandbookSettings(_Section):
    # The folder of the handbook's Markdown files: framework.md and one <agency>.md per agency
    # (named by its key, or its kind with several counties); relative to the working directory.
    path: Path = Path("handbook")
    # Working days a person may leave a new version unconfirmed before they are reminded.
    remind_days: int = Field(default=2, ge=1, le=60)


class BotEntry(_Section):
    """One bot of a deployment serving several: its key, the counties it serves, where its
    token and webhook secret come from, and its messenger settings ([telegram]'s, with its own
    keys over them)."""

    key: str = Field(pattern=r"^[a-z0-9_-]{1,32}$")
    counties: list[str] = Field(min_length=1)
    token_env: str = Field(pattern=r"^[A-Z][A-Z0-9_]*$")
    webhook_secret_env: str | None = Field(default=None, pattern=r"^[A-Z][A-Z0-9_]*$")
    telegram: TelegramSettings

    @model_validator(mode="after")
    def _own_webhook_path(self) -> BotEntry:
        """Each bot at a path of its own on the one webhook server: /telegram/<key>."""
        if self.telegram.webhook_path == "telegram":
            path = f"telegram/{self.key}"
            object.__setattr__(
                self, "telegram", self.telegram.model_copy(update={"webhook_path": path})
            )
        return self

    def require_token(self) -> str:
        """This bot's token, or a ConfigError naming the variable to set."""
        if self.telegram.token is None:
            raise ConfigError(
                f"{self.token_env} is not set: it holds the token of bot {self.key!r} "
                "([[bots]] in the config); get one from @BotFather (Bale: @botfather)"
            )
        return self.telegram.token.get_secret_value()


# The key of the one bot of a config without [[bots]].
SINGLE_BOT = "main"


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
    handbook: HandbookSettings = Field(default_factory=HandbookSettings)
    # One county ([county] with top-level [[agencies]] in the file) or several ([[counties]]).
    counties: list[CountySettings] = Field(min_length=1)
    domains: list[DomainSettings]
    # Several bots in one deployment, each serving some counties; none: one bot ([telegram]).
    bots: list[BotEntry] = Field(default_factory=list)
    # The bot this copy of the settings is for (`for_bot`); the deployment's own copy has none.
    _serving: str | None = PrivateAttr(default=None)

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

    def setup_gaps(self) -> list[str]:
        """What is not configured yet in any county (see CountySettings.setup_gaps)."""
        return [gap for county in self.counties for gap in county.setup_gaps()]

    def county_named(self, key: str | None) -> CountySettings:
        """The county with this key (the first when the key is unknown or None)."""
        return next((county for county in self.counties if county.key == key), self.counties[0])

    def case_filter_county(self, county_key: str | None) -> str | None:
        """The county to narrow cases and people to: none when the deployment has one."""
        return county_key if len(self.counties) > 1 else None

    def county_of_coordinator(self, user_id: int) -> CountySettings | None:
        """The county this person coordinates, if any (the first, should they be in several)."""
        return next((c for c in self.counties if user_id in c.coordinators), None)

    def council_county_of(self, user_id: int) -> CountySettings | None:
        """The county whose council this person sits on, if any."""
        return next(
            (c for c in self.counties if any(m.id == user_id for m in c.council_members)), None
        )

    def county_of_agency(self, agency_key: str) -> CountySettings | None:
        """The county an agency belongs to."""
        return next(
            (c for c in self.counties if any(a.key == agency_key for a in c.agencies)), None
        )

    def require_token(self) -> str:
        """The bot token, or a ConfigError that tells a newcomer how to get one."""
        if self._serving is not None:
            return self.bot_named(self._serving).require_token()
        if self.bots:
            for entry in self.bots:
                entry.require_token()
            return self.bots[0].require_token()
        if self.telegram.token is None:
            raise ConfigError(TOKEN_HELP)
        return self.telegram.token.get_secret_value()

    @model_validator(mode="after")
    def _each_county_one_bot(self) -> Settings:
        if not self.bots:
            return self
        if repeated := _repeated([entry.key for entry in self.bots]):
            raise ValueError(f"bot keys must be unique, repeated: {repeated}")
        if repeated := _repeated([entry.token_env for entry in self.bots]):
            raise ValueError(f"each bot needs a token of its own, repeated token_env: {repeated}")
        tokens = [e.telegram.token.get_secret_value() for e in self.bots if e.telegram.token]
        if len(tokens) != len(set(tokens)):
            same = [e.token_env for e in self.bots if e.telegram.token and tokens.count(
                e.telegram.token.get_secret_value()) > 1]  # fmt: skip
            raise ValueError(f"each bot needs a token of its own: {', '.join(same)} hold the same")
        counties = [county.key for county in self.counties]
        served = [key for entry in self.bots for key in entry.counties]
        if unknown := sorted(set(served) - set(counties)):
            raise ValueError(f"bots serve unknown counties: {', '.join(unknown)}")
        if repeated := _repeated(served):
            raise ValueError(f"a county is served by one bot only, repeated: {repeated}")
        if unserved := [key for key in counties if key not in served]:
            raise ValueError(f"no bot serves counties: {', '.join(unserved)}")
        return self

    @model_validator(mode="after")
    def _ids_of_the_other_messenger_apart(self) -> Settings:
        """On both messengers, the ids a county of the other messenger's bot names are read as
        the deployment keeps them (bot/ids.py): its groups, coordinators and council."""
        if not self.on_both_messengers:
            return self
        from bot.ids import moved_in

        def moved(value: int | None) -> int | None:
            return None if value is None else moved_in(value)

        apart = {key for entry in self.bots if self.ids_apart(entry.key) for key in entry.counties}
        counties = [
            county.model_copy(
                update={
                    "coordinators": [moved_in(user) for user in county.coordinators],
                    "coordinator_chat_id": moved(county.coordinator_chat_id),
                    "council_chat_id": moved(county.council_chat_id),
                    "council_members": [
                        member.model_copy(update={"id": moved_in(member.id)})
                        for member in county.council_members
                    ],
                    "agencies": [
                        agency.model_copy(update={"chat_id": moved(agency.chat_id)})
                        for agency in county.agencies
                    ],
                }
            )
            if county.key in apart
            else county
            for county in self.counties
        ]
        object.__setattr__(self, "counties", counties)
        return self

    @property
    def on_both_messengers(self) -> bool:
        """Whether the deployment's bots are on Telegram and on Bale."""
        return len({entry.telegram.platform for entry in self.bots}) > 1

    def ids_apart(self, key: str) -> bool:
        """Whether a bot is on the other messenger than the first bot's, its ids kept moved
        (bot/ids.py)."""
        if not self.bots:
            return False
        return self.bot_named(key).telegram.platform != self.bots[0].telegram.platform

    @property
    def bot_keys(self) -> list[str]:
        """The deployment's bots, the first (which runs the jobs) first."""
        return [entry.key for entry in self.bots] or [SINGLE_BOT]

    def bot_named(self, key: str) -> BotEntry:
        """The [[bots]] entry with this key."""
        found = next((entry for entry in self.bots if entry.key == key), None)
        if found is None:
            raise ConfigError(f"no bot {key!r} in [[bots]]")
        return found

    def for_bot(self, key: str) -> Settings:
        """These settings as one bot of the deployment sees them: its [telegram]."""
        if not self.bots:
            return self
        view = self.model_copy(update={"telegram": self.bot_named(key).telegram})
        view._serving = key
        return view

    @property
    def serving(self) -> str:
        """The key of the bot these settings are for."""
        return self._serving or self.bot_keys[0]

    def counties_of_bot(self, key: str | None) -> list[str] | None:
        """The counties a bot serves; None when one bot serves them all."""
        if not self.bots or key is None:
            return None
        return list(self.bot_named(key).counties)

    def bot_of_county(self, county_key: str) -> str:
        """The bot that serves a county."""
        return next(
            (entry.key for entry in self.bots if county_key in entry.counties), self.bot_keys[0]
        )


def check_token(token: str, variable: str = TOKEN_ENV) -> str:
    """Refuse placeholder and malformed tokens before they reach the network."""
    lowered = token.lower()
    if any(hint in lowered for hint in _PLACEHOLDER_HINTS):
        raise ConfigError(
            f"{variable}: this is a placeholder from an example, not a bot token; "
            "put the token @BotFather gave you in it"
        )
    if not _TOKEN_SHAPE.match(token):
        raise ConfigError(
            f"{variable}: this does not look like a bot token "
            "(expected '<digits>:<at least 20 letters, digits, _ or ->' from @BotFather)"
        )
    return token


def check_webhook_secret(secret: str, variable: str = WEBHOOK_SECRET_ENV) -> str:
    """Refuse a webhook secret short enough to guess."""
    if len(secret) < WEBHOOK_SECRET_MIN_LENGTH:
        raise ConfigError(
            f"{variable}: {len(secret)} characters is too short to keep others' calls "
            f"out; use at least {WEBHOOK_SECRET_MIN_LENGTH} (openssl rand -hex 32)"
        )
    return secret


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
        telegram["webhook_secret"] = check_webhook_secret(secret)
    if url := environ.get(DATABASE_URL_ENV, "").strip():
        raw.setdefault("database", {})["url"] = url
    bots = raw.get("bots")
    if isinstance(bots, list):
        raw["bots"] = [_bot_from_environment(entry, telegram, environ) for entry in bots]
        # [telegram] is then what the bots share; each bot's own copy is what runs.
        raw["telegram"] = {k: v for k, v in telegram.items() if k not in ("mode", "webhook_url")}


# What a [[bots]] entry says of itself; any other key is a [telegram] key it sets its own way.
_BOT_OWN_KEYS = ("key", "counties", "token_env", "webhook_secret_env")


def _bot_from_environment(entry: Any, telegram: dict[str, Any], environ: Mapping[str, str]) -> Any:
    """A [[bots]] entry with its messenger settings: [telegram]'s, then its own keys over them,
    then its token and webhook secret from the environment variables it names."""
    if not isinstance(entry, dict):
        return entry
    key = entry.get("key", "?")
    for secret in ("token", "webhook_secret"):
        if secret in entry:
            raise ConfigError(
                f"bots.{key}.{secret}: secrets must not be written in the config file; name an "
                f"environment variable in {secret}_env and put the {secret} there"
            )
    own = {k: entry[k] for k in _BOT_OWN_KEYS if k in entry}
    merged = {k: v for k, v in telegram.items() if k not in ("token", "webhook_secret")}
    merged.update({k: v for k, v in entry.items() if k not in _BOT_OWN_KEYS})
    if "base_url" in entry and "platform" not in entry:
        merged.pop("platform", None)  # a Bale address under a Telegram [telegram] means Bale
        for platform_key in ("base_file_url", "deep_link_base"):
            if platform_key not in entry:
                merged.pop(platform_key, None)
    token_env = str(entry.get("token_env", ""))
    if token := environ.get(token_env, "").strip():
        merged["token"] = check_token(token, token_env)
    secret_env = str(entry.get("webhook_secret_env", ""))
    if secret := environ.get(secret_env, "").strip():
        merged["webhook_secret"] = check_webhook_secret(secret, secret_env)
    elif merged.get("mode") == "webhook":
        raise ConfigError(
            f"bots.{key}: webhook mode needs a secret: name a variable in webhook_secret_env "
            f"and put the secret there{f' ({secret_env} is not set)' if secret_env else ''}"
        )
    if "webhook_url" not in entry and merged.get("webhook_url"):
        merged["webhook_url"] = f"{str(merged['webhook_url']).rstrip('/')}/{key}"
    return {**own, "telegram": merged}


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

"""Settings: ``config.toml``, overlaid by ``secrets.toml``, then ``NEWSLETTER_*`` variables.

Environment variables win over both files, and nest with ``__``:
``NEWSLETTER_NEWSLETTER__BASE_URL=https://news.example.org/``. ``secrets.toml``, beside
the config file and optional, holds what a project must not commit (the ``[security]
secret`` that ``newsletter init`` generates, a relay password); it wins over
``config.toml``.
Relative paths are resolved against the folder that holds the config file, so a
cron job gives the same result whatever its working directory.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import tomllib
import typing
import unicodedata
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    EmailStr,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    SettingsError,
    TomlConfigSettingsSource,
)

from .errors import ConfigError, describe_validation_error

__all__ = [
    "DNS_NAME",
    "SAMPLE_SECRET",
    "SECRETS_FILE",
    "BuildSettings",
    "ChecksSettings",
    "DkimSettings",
    "DoctorSettings",
    "NewsletterSettings",
    "PathSettings",
    "SecuritySettings",
    "Settings",
    "SmtpSettings",
    "StoreSettings",
    "SubscribeSettings",
    "WebSettings",
    "load_settings",
]

#: The secret shipped in the sample config.toml: fine for the local capture, refused for a relay.
SAMPLE_SECRET = "sample-secret-change-me"

DEFAULT_CONFIG = Path("config.toml")

#: Longest newsletter name (the display name in every From header).
NAME_MAX = 200
#: Longest base_url: it goes, with a token, into one List-Unsubscribe header line.
URL_MAX = 500

#: Read beside the config file, if it is there: keys kept out of version control.
SECRETS_FILE = "secrets.toml"


class _Section(BaseModel):
    # A misspelt key must be an error, not a silently ignored setting.
    model_config = ConfigDict(extra="forbid")


class NewsletterSettings(_Section):
    name: str = Field(description="The newsletter's name, shown in the header and the From name.")
    from_address: EmailStr = Field(description="The address messages are sent from.")
    reply_to: EmailStr = Field(description="Where replies go.")
    base_url: str = Field(
        description="Public web root: archive pages, images and the unsubscribe page live under it."
    )
    postal_address: str = Field(description="The organisation's postal address, for the footer.")
    language: str = Field(
        default="en",
        pattern=r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{1,8})*$",
        description="BCP 47 language tag for the `lang` attribute, e.g. en, fr, pt-BR.",
    )
    greeting: str = Field(
        default="Hello {first_name},",
        description="Greeting: {first_name} or {name} is the subscriber's, when known.",
    )
    greeting_no_name: str = Field(default="Hello,", description="Greeting when the name is not.")
    unsubscribe_mailto: EmailStr | None = Field(
        default=None, description="Also offer List-Unsubscribe by mail to this address."
    )

    @field_validator("base_url")
    @classmethod
    def _base_url(cls, value: str) -> str:
        if len(value) > URL_MAX:
            # With a token it is one List-Unsubscribe line, which must stay under 998.
            raise ValueError(f"is {len(value)} characters; keep it under {URL_MAX}")
        # It is copied into List-Unsubscribe: a line break here would inject headers.
        if any(c.isspace() or unicodedata.category(c) in ("Cc", "Cf", "Zl", "Zp") for c in value):
            raise ValueError("must not contain spaces, line breaks or control characters")
        parts = urlsplit(value)
        if parts.scheme not in ("https", "http") or not parts.hostname:
            raise ValueError(f"must be an absolute https:// address (got {value!r})")
        if parts.query or parts.fragment:
            raise ValueError(f"must not have a ?query or #fragment (got {value!r})")
        # Always one trailing slash, so "images/x.png" joins under it rather than beside it.
        return value.rstrip("/") + "/"

    @field_validator("greeting")
    @classmethod
    def _greeting(cls, value: str) -> str:
        if "{name}" not in value and "{first_name}" not in value:
            raise ValueError(
                "must contain {first_name} or {name}, where the subscriber's name goes"
            )
        return value

    def greet(self, name: str, first_name: str = "") -> str:
        """One subscriber's greeting; ``greeting_no_name`` when it needs a name they have
        not given (a first name is never guessed from a full name: "Hello Ada Lovelace,"
        reads like a mail merge, and names are not always given-then-family)."""
        fields = {"{name}": name, "{first_name}": first_name}
        used = [key for key in fields if key in self.greeting]
        if not all(fields[key] for key in used):
            return self.greeting_no_name
        # One pass: a name that itself reads "{first_name}" is not filled in again.
        return re.sub(r"\{(?:first_name|name)\}", lambda m: fields[m[0]], self.greeting)

    @field_validator("name", "postal_address")
    @classmethod
    def _one_line(cls, value: str, info: ValidationInfo) -> str:
        from .models import control_problem  # the one rule for text that goes in a header

        problem = control_problem(value)
        if problem:
            raise ValueError(f"must be a single line with no control characters; remove {problem}")
        if info.field_name == "name" and len(value.strip()) > NAME_MAX:
            # The name is the From and Reply-To display name: header lines stop at 998.
            raise ValueError(f"is {len(value.strip())} characters; keep it under {NAME_MAX}")
        if not value.strip():
            raise ValueError("must not be empty")
        return value.strip()


class PathSettings(_Section):
    issues_dir: Path = Field(default=Path("issues"), description="Where issue files live.")
    output_dir: Path = Field(default=Path("out"), description="Where `build` writes.")
    templates_dir: Path = Field(
        default=Path("templates"),
        description="Project templates, searched before the built-in theme.",
    )
    static_dir: Path = Field(
        default=Path("static"),
        description="Files published at base_url: an issue's images/x.png is static/images/x.png.",
    )


class BuildSettings(_Section):
    allow_linkless_items: bool = Field(
        default=False,
        description="Build items that have no URL (as plain text) instead of refusing them.",
    )


class StoreSettings(_Section):
    path: Path = Field(
        default=Path("newsletter.db"), description="The SQLite file: subscribers and send ledger."
    )


class SmtpSettings(_Section):
    mode: Literal["capture", "relay"] = Field(
        default="capture",
        description="capture: a local SMTP server on loopback stores every message in a Maildir; "
        "relay: send through host:port.",
    )
    capture_dir: Path = Field(default=Path("out/mail"), description="Maildir for capture mode.")
    host: str = Field(default="localhost", description="SMTP relay host.")
    port: int = Field(default=587, ge=1, le=65535, description="SMTP relay port.")
    security: Literal["none", "starttls", "tls"] = Field(
        default="starttls", description="none, starttls (usually port 587) or tls (port 465)."
    )
    username: str = Field(default="", description="Login; empty for no AUTH.")
    password: SecretStr = Field(default=SecretStr(""), description="Password; never printed.")
    ca_file: Path | None = Field(default=None, description="Extra CA bundle to trust (PEM).")
    timeout: float = Field(default=30.0, gt=0, description="Seconds to wait for any reply.")
    connections: int = Field(default=4, ge=1, le=64, description="Parallel connections.")
    rate: float = Field(default=0.0, ge=0, description="Messages per second; 0 = no limit.")
    messages_per_connection: int = Field(
        default=500, ge=1, description="Reconnect after this many messages."
    )
    max_attempts: int = Field(
        default=6, ge=1, description="Tries per message for 4xx replies, timeouts, drops."
    )
    retry_delay: float = Field(
        default=2.0, ge=0, description="First backoff delay in seconds; doubles per attempt."
    )
    bounce_after: int = Field(
        default=2, ge=1, description="5xx replies to RCPT before a subscriber is marked bounced."
    )
    return_path: str = Field(
        default="",
        description="Bounce address: the envelope MAIL FROM and Return-Path; empty = from_address.",
    )

    @field_validator("return_path")
    @classmethod
    def _return_path(cls, value: str) -> str:
        if not value:
            return value
        from .addresses import normalise_email

        # It is the envelope sender of every message: one address, nothing that could
        # break the MAIL FROM line (normalise_email refuses line breaks too).
        if any(c.isspace() or unicodedata.category(c) == "Cc" for c in value.strip()):
            raise ValueError("must be one e-mail address, with no spaces or control characters")
        return normalise_email(value)


class SecuritySettings(_Section):
    secret: SecretStr = Field(
        default=SecretStr(SAMPLE_SECRET),
        description="HMAC key for unsubscribe tokens. Set a long random value for real sends.",
    )
    previous_secrets: list[SecretStr] = Field(
        default_factory=list,
        description="Earlier secrets: links signed with them still verify (key rotation).",
    )

    def all_secrets(self) -> list[str]:
        """The current secret first, then the previous ones: what a link may be signed with."""
        return [s.get_secret_value() for s in (self.secret, *self.previous_secrets)]


class SubscribeSettings(_Section):
    confirm_hours: int = Field(
        default=48, ge=1, le=24 * 30, description="Hours a confirmation link stays valid."
    )
    per_ip_per_hour: int = Field(
        default=10, ge=1, description="Subscribe-form posts accepted per client address per hour."
    )
    per_address_per_day: int = Field(
        default=3, ge=1, description="Confirmation mails sent to one address per day, at most."
    )


class WebSettings(_Section):
    trusted_proxies: list[str] = Field(
        default_factory=list,
        description="Proxies (addresses or networks) whose X-Forwarded-For is believed.",
    )

    @field_validator("trusted_proxies")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        for entry in value:
            try:
                ipaddress.ip_network(entry, strict=False)
            except ValueError:
                raise ValueError(
                    f"{entry!r} is not an IP address or network (e.g. 10.0.0.0/8)"
                ) from None
        return value


#: A DNS name as DKIM's d= and s= take it (RFC 6376 3.5: dot-separated labels of letters,
#: digits and hyphens): nothing else may reach the DKIM-Signature header.
DNS_NAME = re.compile(r"(?=.{1,253}$)([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)*"
                       r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?")  # fmt: skip


class DkimSettings(_Section):
    domain: str = Field(default="", description="d= domain; empty turns DKIM signing off.")
    selector: str = Field(default="", description="s= selector.")
    key_file: Path | None = Field(default=None, description="PEM private key.")

    @field_validator("domain", "selector")
    @classmethod
    def _dns_name(cls, value: str, info: ValidationInfo) -> str:
        value = value.strip()
        if value and not DNS_NAME.fullmatch(value):
            example = "example.org" if info.field_name == "domain" else "s1"
            raise ValueError(
                f"{value!r} is not a DNS name: use letters, digits, hyphens and dots, "
                f"e.g. {example!r}"
            )
        return value.lower()


def parse_nameserver(text: str) -> tuple[str, int]:
    """``"127.0.0.1:5353"``, ``"[::1]:53"`` or ``"192.0.2.53"`` -> ``(address, port)``."""
    value = text.strip()
    host, port = value, "53"
    if value.startswith("["):
        host, closed, rest = value[1:].partition("]")
        if not closed or (rest and not rest.startswith(":")):
            host = value  # not an address: reported below
        elif rest:
            port = rest[1:]
    elif value.count(":") == 1:
        host, port = value.split(":")
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        raise ValueError(
            f"{text!r} is not an IP address with an optional port "
            "(e.g. 127.0.0.1:5353 or [::1]:5353)"
        ) from None
    if not (port.isascii() and port.isdigit() and 1 <= int(port) <= 65535):
        raise ValueError(f"{text!r}: the port must be a number from 1 to 65535")
    return str(address), int(port)


class DoctorSettings(_Section):
    sending_ips: list[str] = Field(
        default_factory=list,
        description="Addresses the relay sends from; `doctor` evaluates SPF for each.",
    )
    nameservers: list[str] = Field(
        default_factory=list,
        description="DNS servers `doctor` asks, as IP or IP:PORT; empty: the system's resolver.",
    )
    timeout: float = Field(
        default=5.0, gt=0, le=60, description="Seconds `doctor` waits for each DNS answer."
    )

    @field_validator("sending_ips")
    @classmethod
    def _addresses(cls, value: list[str]) -> list[str]:
        addresses = []
        for entry in value:
            try:
                addresses.append(str(ipaddress.ip_address(entry.strip())))
            except ValueError:
                raise ValueError(
                    f"{entry!r} is not an IP address (e.g. 192.0.2.10 or 2001:db8::10)"
                ) from None
        return addresses

    @field_validator("nameservers")
    @classmethod
    def _nameservers(cls, value: list[str]) -> list[str]:
        for entry in value:
            parse_nameserver(entry)
        return value


class SourceSettings(_Section):
    name: str = Field(description="A short name, used by `collect --source` and in the library.")
    type: Literal["feed", "page", "text"] = Field(description="feed, page or text.")
    location: str = Field(description="URL, or a path relative to the config file.")
    kind: str = Field(default="news", description="Kind for items that do not say.")
    section: str = Field(default="", description="Section the items go to in a draft.")
    selectors: dict[str, str] = Field(
        default_factory=dict,
        description="For type page: CSS selectors item, title, link, date, summary, image.",
    )

    @model_validator(mode="after")
    def _page_needs_items(self) -> SourceSettings:
        if self.type == "page" and not self.selectors.get("item"):
            raise ValueError(f"source {self.name!r}: a page source needs selectors.item")
        return self


class DraftSection(_Section):
    title: str
    kinds: list[str] = Field(description="Item kinds that go to this section.")
    limit: int = Field(default=8, ge=1, description="At most this many items.")


def _default_sections() -> list[DraftSection]:
    return [
        DraftSection(title="News", kinds=["news"], limit=8),
        DraftSection(title="Video", kinds=["video", "audio"], limit=3),
        DraftSection(title="Further reading", kinds=["feature", "review", "opinion"], limit=6),
    ]


class DraftSettings(_Section):
    lead: bool = Field(default=True, description="Pick a lead story.")
    sections: list[DraftSection] = Field(default_factory=_default_sections)
    timezone: str = Field(
        default="UTC", description="Time zone that decides which week a story falls in."
    )

    @field_validator("timezone")
    @classmethod
    def _timezone(cls, value: str) -> str:
        return _check_timezone(value)


_WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def _check_timezone(value: str) -> str:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        message = f"unknown time zone {value!r} (use a name like Europe/Brussels)"
        raise ValueError(message) from None
    return value


class WeeklySettings(_Section):
    require_approval: bool = Field(
        default=False,
        description="`weekly` sends only an issue approved in the studio (exit 2 otherwise).",
    )
    send_at: str = Field(
        default="",
        description='When cron or the systemd timer runs `weekly`, e.g. "Fri 09:00" (shown '
        "in the studio; the schedule itself stays with cron or systemd).",
    )
    timezone: str = Field(default="", description="Time zone of send_at; default [draft]'s.")

    @field_validator("send_at")
    @classmethod
    def _send_at(cls, value: str) -> str:
        value = " ".join(value.split())
        if not value:
            return value
        match = re.fullmatch(r"([A-Za-z]{3})[a-z]* (\d{1,2}):(\d{2})", value)
        day = match[1].lower() if match else ""
        if not match or day not in _WEEKDAYS or int(match[2]) > 23 or int(match[3]) > 59:
            raise ValueError(f'{value!r} is not a weekday and a time, e.g. "Fri 09:00"')
        return f"{day.title()} {int(match[2]):02d}:{match[3]}"

    @field_validator("timezone")
    @classmethod
    def _timezone(cls, value: str) -> str:
        return _check_timezone(value) if value else value

    def schedule(self) -> tuple[int, int, int] | None:
        """(weekday 0 = Monday, hour, minute), or None when no schedule is set."""
        if not self.send_at:
            return None
        day, time = self.send_at.split()
        hour, minute = time.split(":")
        return _WEEKDAYS.index(day.lower()), int(hour), int(minute)


class StudioSettings(_Section):
    auth: Literal["accounts", "none"] = Field(
        default="accounts",
        description='"accounts" (staff log in), or "none": one person on their own '
        "computer, allowed only on a loopback address.",
    )
    test_addresses: list[EmailStr] = Field(
        default_factory=list, description='Where "Send test" goes unless other addresses are typed.'
    )
    session_hours: float = Field(
        default=12.0, gt=0, le=24 * 30, description="A login lasts this long."
    )
    logins_per_hour: int = Field(
        default=10, ge=1, description="Failed logins allowed per client address and per account."
    )
    secure_cookies: bool | None = Field(
        default=None,
        description="Mark the session cookie Secure; default: when the request came over https.",
    )


class CollectSettings(_Section):
    timeout: float = Field(default=20.0, gt=0, description="Seconds per HTTP request.")
    max_bytes: int = Field(default=5_000_000, gt=0, description="Largest response accepted.")
    max_redirects: int = Field(default=5, ge=0, description="Redirects followed per request.")
    user_agent: str = Field(
        default="newsletter-collect/0.1 (+https://newsletter.example.org/)",
        description="User-Agent sent with every request; name your organisation.",
    )
    same_title_days: int = Field(
        default=3, ge=0, description="Same normalised title within this many days = same story."
    )
    allow_private: bool = Field(
        default=False,
        description="Fetch loopback and private addresses too (tests, an intranet newsroom).",
    )


#: A colour as CSS hex, #rgb or #rrggbb: what every mail client understands.
Colour = typing.Annotated[str, Field(pattern=r"^#(?:[0-9a-fA-F]{3}){1,2}$")]


class ThemeSettings(_Section):
    """The shipped templates' colours, logo, fonts and footer: branding without editing
    templates. The contrast check tests each pair and names the key at fault."""

    brand: Colour = Field(default="#004990", description="Masthead and section headings.")
    brand_text: Colour = Field(default="#ffffff", description="Text on the brand colour.")
    accent: Colour = Field(default="#0b55a3", description="Links.")
    heading: Colour = Field(default="#0b2a4a", description="Story headlines.")
    text: Colour = Field(default="#1f2933", description="Body text.")
    muted: Colour = Field(default="#46535f", description="Dates, footer and small print.")
    background: Colour = Field(default="#ffffff", description="Behind the stories.")
    page: Colour = Field(default="#eef2f7", description="Around the stories.")
    rule: Colour = Field(default="#d5dde6", description="Lines between sections.")
    dark_brand: Colour = Field(default="#004990", description="brand, in dark mode.")
    dark_brand_text: Colour = Field(default="#ffffff", description="brand_text, in dark mode.")
    dark_accent: Colour = Field(default="#8ec5ff", description="accent, in dark mode.")
    dark_heading: Colour = Field(default="#e6edf3", description="heading, in dark mode.")
    dark_text: Colour = Field(default="#e6edf3", description="text, in dark mode.")
    dark_muted: Colour = Field(default="#b6c2cf", description="muted, in dark mode.")
    dark_background: Colour = Field(default="#17212c", description="background, in dark mode.")
    dark_page: Colour = Field(default="#0f1720", description="page, in dark mode.")
    dark_rule: Colour = Field(default="#2c3a48", description="rule, in dark mode.")
    font: str = Field(
        default="Helvetica, Arial, sans-serif",
        max_length=200,
        pattern=r"^[A-Za-z0-9 ,'\"-]+$",
        description="CSS font stack: web-safe fonts first; clients have no web fonts.",
    )
    logo: str = Field(
        default="",
        max_length=500,
        description="Logo above the name: a path under [paths] static_dir, e.g. images/logo.png.",
    )
    logo_alt: str = Field(
        default="", max_length=200, validate_default=True, description="The logo's alt text."
    )
    logo_width: int = Field(default=160, ge=16, le=544, description="Logo width in pixels.")
    footer: str = Field(
        default="", max_length=1000, description="Extra footer text (Markdown), above the address."
    )

    @field_validator("logo")
    @classmethod
    def _logo(cls, value: str) -> str:
        if value and ("://" in value or value.startswith("/") or ".." in value.split("/")):
            raise ValueError("give a path under [paths] static_dir, e.g. images/logo.png")
        return value

    @field_validator("logo_alt")
    @classmethod
    def _logo_alt(cls, value: str, info: ValidationInfo) -> str:
        if info.data.get("logo") and not value.strip():
            raise ValueError("the logo needs alt text, usually the organisation's name")
        return value


Severity = Literal["error", "warning", "info"]


class ChecksSettings(_Section):
    allowed_hosts: list[str] = Field(
        default_factory=list,
        description="Link hosts allowed although they look like test hosts (localhost, "
        "private addresses, example domains). `*.example.org` allows subdomains.",
    )
    severity: dict[str, Severity] = Field(
        default_factory=dict, description="Change a check's severity: check name -> level."
    )
    disabled: dict[str, str] = Field(
        default_factory=dict, description="Turn checks off: check name -> reason (logged)."
    )


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="NEWSLETTER_",
        env_nested_delimiter="__",
        extra="forbid",
    )

    newsletter: NewsletterSettings
    paths: PathSettings = PathSettings()
    build: BuildSettings = BuildSettings()
    store: StoreSettings = StoreSettings()
    smtp: SmtpSettings = SmtpSettings()
    security: SecuritySettings = SecuritySettings()
    subscribe: SubscribeSettings = SubscribeSettings()
    web: WebSettings = WebSettings()
    dkim: DkimSettings = DkimSettings()
    doctor: DoctorSettings = DoctorSettings()
    checks: ChecksSettings = ChecksSettings()
    sources: list[SourceSettings] = Field(default_factory=list)
    collect: CollectSettings = CollectSettings()
    draft: DraftSettings = DraftSettings()
    theme: ThemeSettings = ThemeSettings()
    weekly: WeeklySettings = WeeklySettings()
    studio: StudioSettings = StudioSettings()

    #: Folder holding the config file; relative paths are resolved against it.
    root: Path = Field(default=Path("."), exclude=True)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Earlier sources win: explicit arguments, then the environment, then secrets.toml,
        # then config.toml. Sources are merged table by table, so a [security] table in
        # secrets.toml overrides only the keys it sets.
        toml_file = settings_cls.model_config.get("toml_file")
        toml = TomlConfigSettingsSource(settings_cls, toml_file=toml_file)
        if not isinstance(toml_file, str | Path):
            return (init_settings, env_settings, toml)
        # A missing secrets.toml reads as empty.
        secrets = TomlConfigSettingsSource(
            settings_cls, toml_file=Path(toml_file).with_name(SECRETS_FILE)
        )
        return (init_settings, env_settings, secrets, toml)

    @model_validator(mode="after")
    def _resolve_file_paths(self) -> Settings:
        # Files named in the config are relative to the config file, like every path.
        if self.smtp.ca_file is not None:
            self.smtp.ca_file = self.path(self.smtp.ca_file)
        if self.dkim.key_file is not None:
            self.dkim.key_file = self.path(self.dkim.key_file)
        return self

    def path(self, value: Path) -> Path:
        """Resolve a configured path against the config file's folder."""
        return value if value.is_absolute() else self.root / value

    @property
    def issues_dir(self) -> Path:
        return self.path(self.paths.issues_dir)

    @property
    def output_dir(self) -> Path:
        return self.path(self.paths.output_dir)

    @property
    def templates_dir(self) -> Path:
        return self.path(self.paths.templates_dir)

    @property
    def static_dir(self) -> Path:
        return self.path(self.paths.static_dir)

    @property
    def store_path(self) -> Path:
        return self.path(self.store.path)

    @property
    def envelope_sender(self) -> str:
        """The SMTP MAIL FROM: where bounces go (``[smtp] return_path``, else From)."""
        return self.smtp.return_path or self.newsletter.from_address


def _key(loc: Any) -> str:
    parts = [str(p) for p in loc]
    if len(parts) == 1:
        return parts[0]
    return f"[{parts[0]}] {'.'.join(parts[1:])}"


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text (byte {exc.start})") from None
    except RecursionError:
        raise ConfigError(f"{path}: nested too deeply to be a config file") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None


def _sets(data: dict[str, Any], loc: Any) -> bool:
    """Whether the TOML ``data`` holds the key at the error location ``loc``."""
    node: Any = data
    for part in loc:
        if not isinstance(node, dict) or part not in node:
            return False
        node = node[part]
    return True


def _environment_problem() -> str:
    """pydantic-settings says only which section failed; name the variable."""
    for name, value in sorted(os.environ.items()):
        if not name.startswith("NEWSLETTER_") or "__" not in name:
            continue
        section, _, key = name.removeprefix("NEWSLETTER_").lower().partition("__")
        model = Settings.model_fields.get(section)
        field = getattr(model.annotation, "model_fields", {}).get(key) if model else None
        if field is not None and typing.get_origin(field.annotation) in (list, dict):
            try:
                json.loads(value)
            except ValueError:
                return (
                    f"{name}: [{section}] {key} is a list or table: write it as JSON, "
                    f"e.g. {name}='[\"*.example.org\"]'"
                )
    return "a NEWSLETTER_* environment variable could not be read; check list values are JSON"


def load_settings(path: Path | str = DEFAULT_CONFIG) -> Settings:
    """Read ``path`` (TOML), ``secrets.toml`` beside it and the environment.

    Raises :class:`ConfigError` naming the file and the key.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(
            f"{path}: config file not found "
            "(pass --config PATH, or start a project here with `newsletter init`)"
        )
    _read_toml(path)
    secrets_path = path.with_name(SECRETS_FILE)
    secrets = _read_toml(secrets_path) if secrets_path.is_file() else {}

    class _FromFile(Settings):
        model_config = SettingsConfigDict(toml_file=path)

    try:
        settings = _FromFile(root=path.resolve().parent)
    except SettingsError:
        raise ConfigError(_environment_problem()) from None
    except ValidationError as exc:
        (line,) = describe_validation_error(
            exc, lambda loc: f"{secrets_path if _sets(secrets, loc) else path}: {_key(loc)}"
        )
        raise ConfigError(line) from None
    return settings

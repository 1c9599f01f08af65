"""Settings, read from environment variables (documented in the README)."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
# A fictional number (555-01xx is reserved for fiction) so a missing setting is obvious in every reply.
PLACEHOLDER_CARE_TEAM = "555-0100"
# Exactly these: a near miss ("Production", "prod ") used to run development mode, simulator and all.
ENVIRONMENTS = ("development", "test", "production")
MAX_REQUEST_BYTES = 64 * 1024  # Twilio's posts are a few kB; anything larger is refused unread (413)
_PLACEHOLDER = re.compile(r"^(tbd|todo|none|null|changeme|change[-_ ]?me|x+|\.+|-+|your[-_ ].*|<.*>|\$\{.*\})$", re.I)


def _bool(value: str | None, default: bool) -> bool:
    if value is None or value == "":
        return default
    return value.strip().lower() in ("1", "true", "yes", "on")


@dataclass(frozen=True)
class Settings:
    """What the conversation core needs; channels add their own settings in the Flask config."""

    care_team_phone: str = PLACEHOLDER_CARE_TEAM
    emergency_number: str = "911"
    default_locale: str = "en"
    fever_threshold_c: float = 38.0
    serve_unreviewed: bool = True
    max_segments: int = 3
    messages_dir: Path = ROOT / "messages"
    locales_dir: Path = ROOT / "locales"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        return cls(
            care_team_phone=env.get("CARE_TEAM_PHONE") or PLACEHOLDER_CARE_TEAM,
            emergency_number=env.get("EMERGENCY_NUMBER") or "911",
            default_locale=env.get("DEFAULT_LOCALE") or "en",
            fever_threshold_c=float(env.get("FEVER_THRESHOLD_C") or 38.0),
            serve_unreviewed=_bool(env.get("SERVE_UNREVIEWED"), True),
            max_segments=int(env.get("MAX_SEGMENTS") or 3),
            messages_dir=Path(env.get("MESSAGES_DIR") or ROOT / "messages"),
            locales_dir=Path(env.get("LOCALES_DIR") or ROOT / "locales"),
        )


def proxy_hops(value: Any) -> int:
    """PROXY_HOPS: how many proxies (a platform's router, a load balancer, nginx) stand in front of the app and
    append the client's address to X-Forwarded-For. 0 (the default): the address the connection comes from is
    the client's, and the header, which anyone can send, is ignored. ValueError names what is wrong."""
    text = str(value if value is not None else "").strip()
    if not text:
        return 0
    if not text.isdigit() or int(text) > 10:
        raise ValueError(f"PROXY_HOPS must be a whole number from 0 to 10 (the proxies in front of the app), "
                         f"not {text!r}")
    return int(text)


def _phone_problem(value: str) -> str | None:
    """Why ``value`` is not a dialable phone number, checked with libphonenumber (US when no +country)."""
    import phonenumbers

    try:
        number = phonenumbers.parse(value, "US")
    except phonenumbers.NumberParseException as exc:
        return f"not a phone number ({exc.args[0] if exc.args else exc})"
    if not phonenumbers.is_valid_number(number):
        return "not a valid phone number"
    return None


def production_problems(config: Mapping[str, Any], settings: Settings) -> tuple[list[str], list[str]]:
    """What production cannot run with (errors), and what it should be told about loudly (warnings)."""
    errors: list[str] = []
    warnings: list[str] = []

    def value(key: str) -> str:
        return str(config.get(key) or "")

    def blank(key: str) -> bool:
        v = value(key)
        return not v.strip() or bool(_PLACEHOLDER.match(v.strip()))

    for key in ("TWILIO_AUTH_TOKEN", "PUBLIC_BASE_URL", "TWILIO_ACCOUNT_SID", "ALERT_NUMBERS"):
        if blank(key):
            errors.append(f"{key} is missing or a placeholder")
    token = value("TWILIO_AUTH_TOKEN")
    if not blank("TWILIO_AUTH_TOKEN") and (token != token.strip() or len(token) < 32 or re.search(r"\s", token)):
        errors.append("TWILIO_AUTH_TOKEN is malformed (Twilio's tokens are 32 characters, no spaces)")
    sid = value("TWILIO_ACCOUNT_SID")
    if not blank("TWILIO_ACCOUNT_SID") and not re.fullmatch(r"AC[0-9a-fA-F]{32}", sid):
        errors.append("TWILIO_ACCOUNT_SID is malformed (AC followed by 32 hexadecimal digits)")
    if not blank("PUBLIC_BASE_URL"):
        url = urlsplit(value("PUBLIC_BASE_URL").strip())
        if url.scheme not in ("https", "http") or not url.hostname or " " in value("PUBLIC_BASE_URL").strip():
            errors.append("PUBLIC_BASE_URL must be a URL with a scheme and a host (https://assistant.example.org)")
        elif url.scheme == "http":
            warnings.append("PUBLIC_BASE_URL is http, not https: Twilio's requests and signatures travel in clear")
    key = value("SECRET_KEY")
    if blank("SECRET_KEY") or len(key.strip()) < 32:
        errors.append("SECRET_KEY is missing or shorter than 32 characters (it signs the coordinators' sessions; "
                      "python -c 'import secrets; print(secrets.token_hex(32))' makes one)")
    care = settings.care_team_phone
    if care == PLACEHOLDER_CARE_TEAM or not care.strip() or _PLACEHOLDER.match(care.strip()):
        errors.append("CARE_TEAM_PHONE is missing or a placeholder")
    elif problem := _phone_problem(care):
        errors.append(f"CARE_TEAM_PHONE is {problem}")
    for key in ("ALERT_NUMBERS", "ALERT_BACKUP_NUMBERS"):
        for number in [n.strip() for n in value(key).split(",") if n.strip()]:
            if problem := _phone_problem(number):
                errors.append(f"{key}: an entry is {problem}")
    if not blank("ALERT_NUMBERS") and blank("TWILIO_FROM_NUMBER") and blank("TWILIO_MESSAGING_SERVICE_SID"):
        errors.append("alerts need TWILIO_FROM_NUMBER or TWILIO_MESSAGING_SERVICE_SID")
    elif not blank("TWILIO_FROM_NUMBER") and blank("TWILIO_MESSAGING_SERVICE_SID") and (
            problem := _phone_problem(value("TWILIO_FROM_NUMBER"))):
        errors.append(f"TWILIO_FROM_NUMBER is {problem}")
    return errors, warnings

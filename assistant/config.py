"""Settings, read from environment variables (documented in the README)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# A fictional number (555-01xx is reserved for fiction) so a missing setting is obvious in every reply.
PLACEHOLDER_CARE_TEAM = "555-0100"


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

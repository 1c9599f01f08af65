"""Babel extractor for the English source in ``messages/``.

``babel.cfg`` maps ``messages/*.toml`` to this function, so ``pybabel extract -F babel.cfg`` writes
every topic, rule, text, command and cue into ``locales/messages.pot`` with its gettext context.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from .source import SOURCE_FILES, VOICE_FILE, parse_source


def extract_messages(
    fileobj: IO[bytes], keywords: Any, comment_tags: Any, options: dict[str, Any]
) -> Iterator[tuple[int, str, tuple[str, str], list[str]]]:
    """Yield ``(lineno, "pgettext", (context, msgid), comments)`` for one ``messages/*.toml`` file."""
    name = Path(getattr(fileobj, "name", "")).name
    if name not in (*SOURCE_FILES, VOICE_FILE):
        return
    folder = Path(fileobj.name).parent
    texts = {n: (folder / n).read_text(encoding="utf-8") for n in SOURCE_FILES}
    texts[name] = fileobj.read().decode("utf-8")
    source = parse_source(texts)
    # Each file yields only its own entries; parse_source needs all three to check cross-references.
    prefixes = {"topics.toml": ("topic:",), "triage.toml": ("rule:",),
                "system.toml": ("text:", "command:", "cue:"), VOICE_FILE: ("voice:",)}[name]
    for entry in source.entries:
        if entry.context.startswith(prefixes):
            yield entry.lineno, "pgettext", (entry.context, entry.msgid), [entry.comment]

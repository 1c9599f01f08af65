"""A strict reader for gettext ``.po`` files, with a line number for every problem.

Babel's reader is lenient: it accepts ``msgstr "unterminated`` (and drops a character), unknown escapes
and duplicate entries, which is right for a tool that must read any file, wrong for the gate before a
caregiver's phone. This reader follows the PO grammar (GNU gettext manual, "The Format of PO Files")
and says exactly where a file breaks it. Files it accepts are then read with Babel, as the service does.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

# The escapes Babel's reader (what the service reads files with) decodes, and decodes the same way as GNU
# gettext. Any other backslash (\' \? octal \x...) Babel leaves as typed: a caregiver would get "n\'ai", so it
# is an error here.
_ESCAPES = {"\\": "\\", '"': '"', "n": "\n", "t": "\t", "r": "\r", "a": "\a", "b": "\b", "f": "\f", "v": "\v"}
_KEYWORD = re.compile(r"^(msgctxt|msgid_plural|msgid|msgstr(?:\[\d+\])?)\s+(.*)$")
_CHARSET = re.compile(r"charset\s*=\s*([^\s;]+)", re.I)


@dataclass
class PoEntry:
    """One entry as written in the file."""

    context: str | None
    msgid: str
    msgstr: str
    lineno: int  # the entry's first keyword line (msgctxt, else msgid)
    msgstr_lineno: int
    flags: set[str] = field(default_factory=set)
    previous_msgid: str | None = None  # "#| msgid": the English it was translated from
    plural: bool = False

    @property
    def fuzzy(self) -> bool:
        return "fuzzy" in self.flags


@dataclass(frozen=True)
class PoSyntaxError:
    lineno: int
    message: str


@dataclass
class PoFile:
    entries: list[PoEntry]
    errors: list[PoSyntaxError]
    header: dict[str, str]

    def by_context(self) -> dict[str, PoEntry]:
        """msgctxt -> entry, for entries with a msgid (the header is not one)."""
        return {e.context or "": e for e in self.entries if e.msgid}


def parse_string(token: str) -> tuple[str | None, str | None]:
    """The value of one quoted PO string token, or (None, what is wrong)."""
    if not token.startswith('"'):
        return None, "a string must start with a double quote"
    out, i, n = [], 1, len(token)
    while i < n:
        ch = token[i]
        if ch == '"':
            rest = token[i + 1:].strip()
            if rest:
                return None, f"unexpected text after the closing quote: {rest[:20]!r}"
            return "".join(out), None
        if ch == "\\":
            if i + 1 >= n:
                break
            nxt = token[i + 1]
            if nxt in _ESCAPES:
                out.append(_ESCAPES[nxt])
                i += 2
                continue
            hint = {"'": "write the apostrophe itself", "?": "write the question mark itself"}.get(
                nxt, "write the character itself")
            return None, (f"bad escape \\{nxt}: the service would send the backslash as typed; {hint} (\\\\ is a "
                          "backslash, \\\" a quote, \\n a new line)")
        out.append(ch)
        i += 1
    return None, "the string has no closing quote (end of line inside a string)"


def parse_po(data: bytes) -> PoFile:
    """Parse ``data`` strictly; every problem is in ``errors`` with its line, nothing raises."""
    errors: list[PoSyntaxError] = []
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[:exc.start].count(b"\n") + 1
        return PoFile([], [PoSyntaxError(line, "the file is not UTF-8 (save it as UTF-8)")], {})
    if text.startswith("\ufeff"):
        text = text[1:]
    entries: list[PoEntry] = []
    cur: dict = {}
    field_name: str | None = None  # the keyword continuation lines add to

    def finish(lineno: int) -> None:
        nonlocal cur, field_name
        if cur.get("msgid") is not None or cur.get("msgctxt") is not None:
            if cur.get("msgid") is None:
                errors.append(PoSyntaxError(cur["start"], "msgctxt without a msgid"))
            elif cur.get("msgstr") is None:
                errors.append(PoSyntaxError(cur["start"], "msgid without a msgstr"))
            else:
                entries.append(PoEntry(cur.get("msgctxt"), cur["msgid"], cur["msgstr"], cur["start"],
                                       cur["msgstr_line"], cur.get("flags", set()), cur.get("previous"),
                                       cur.get("plural", False)))
            cur = {}
        elif cur.get("msgstr") is not None:
            cur = {}
        field_name = None

    pending_flags: set[str] = set()
    previous: list[str] | None = None
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line:
            finish(lineno)
            continue
        if line.startswith("#~"):
            continue  # obsolete entries: kept by gettext tools for reuse, never served
        if line.startswith("#"):
            if cur.get("msgstr") is not None:
                finish(lineno)
            if line.startswith("#,"):
                pending_flags |= {f.strip() for f in line[2:].split(",") if f.strip()}
            elif line.startswith("#|"):
                prev = line[2:].strip()
                if prev.startswith("msgid "):
                    previous = [prev[6:].strip()]
                elif prev.startswith('"') and previous is not None:
                    previous.append(prev)
            continue
        if line.startswith('"'):
            if field_name is None:
                errors.append(PoSyntaxError(lineno, "a string line outside any msgid or msgstr"))
                continue
            value, problem = parse_string(line)
            if problem:
                errors.append(PoSyntaxError(lineno, problem))
                continue
            cur[field_name] += value
            continue
        m = _KEYWORD.match(line)
        if not m:
            errors.append(PoSyntaxError(lineno, f"not a gettext line: {line[:30]!r}"))
            field_name = None
            continue
        keyword, rest = m.group(1), m.group(2)
        if keyword in ("msgctxt", "msgid") and (cur.get("msgstr") is not None
                                                 or (keyword == "msgctxt" and cur.get("msgid") is not None)):
            finish(lineno)
        if keyword == "msgid" and cur.get("msgid") is not None:
            errors.append(PoSyntaxError(lineno, "a second msgid before the msgstr of the first"))
            cur = {}
        if not cur:
            cur = {"start": lineno, "flags": pending_flags}
            if previous:
                prev_text = []
                for tok in previous:
                    v, _problem = parse_string(tok)
                    prev_text.append(v or "")
                cur["previous"] = "".join(prev_text)
            pending_flags, previous = set(), None
        value, problem = parse_string(rest)
        if problem:
            errors.append(PoSyntaxError(lineno, problem))
            value = ""
        if keyword.startswith("msgstr"):
            if cur.get("msgid") is None:
                errors.append(PoSyntaxError(lineno, "msgstr without a msgid"))
                cur = {}
                field_name = None
                continue
            if keyword == "msgstr" or keyword == "msgstr[0]":
                cur["msgstr"], cur["msgstr_line"] = value, lineno
                field_name = "msgstr"
            else:
                field_name = None  # other plural forms: not used by this catalog
                cur["plural"] = True
            continue
        if keyword == "msgid_plural":
            cur["plural"] = True
            field_name = None
            continue
        if keyword in cur:
            errors.append(PoSyntaxError(lineno, f"a second {keyword} in one entry"))
        cur[keyword] = value
        field_name = keyword
    finish(len(text.splitlines()) + 1)

    header: dict[str, str] = {}
    seen: dict[tuple[str | None, str], int] = {}
    for e in entries:
        if not e.msgid and e.context is None:
            for hline in e.msgstr.splitlines():
                if ":" in hline:
                    k, v = hline.split(":", 1)
                    header[k.strip()] = v.strip()
            charset = _CHARSET.search(header.get("Content-Type", ""))
            if charset is None:
                errors.append(PoSyntaxError(e.msgstr_lineno, "the header has no charset "
                                            "(Content-Type: text/plain; charset=UTF-8)"))
            elif charset.group(1).lower().replace("_", "-") not in ("utf-8", "utf8"):
                errors.append(PoSyntaxError(e.msgstr_lineno, f"the header says charset={charset.group(1)}; "
                                            "the file must be UTF-8 and say charset=UTF-8"))
            continue
        key = (e.context, e.msgid)
        if key in seen:
            errors.append(PoSyntaxError(e.lineno, f"duplicate entry {e.context or e.msgid[:30]!r} "
                                        f"(first at line {seen[key]})"))
        else:
            seen[key] = e.lineno
    contexts: dict[str, int] = {}
    for e in entries:
        if e.context and (e.context, e.msgid) in seen and seen[(e.context, e.msgid)] == e.lineno:
            if e.context in contexts:
                errors.append(PoSyntaxError(e.lineno, f"duplicate entry {e.context!r} "
                                            f"(first at line {contexts[e.context]})"))
            else:
                contexts[e.context] = e.lineno
    if not any(not e.msgid and e.context is None for e in entries) and entries:
        errors.append(PoSyntaxError(1, "no header entry (msgid \"\") with the charset"))
    errors.sort(key=lambda x: x.lineno)
    return PoFile(entries, errors, header)

"""Command line: ``assistant ask``, ``assistant chat`` and the catalog tools, as click commands on app.cli."""

from __future__ import annotations

import json
import re
import shutil
import sys
import unicodedata

import click
from flask import Flask, current_app
from flask.cli import AppGroup, FlaskGroup, with_appcontext

from .conversation import Assistant, State
from .segments import NUMBER


def _assistant() -> Assistant:
    return current_app.extensions["assistant"]


@click.command("ask")
@click.option("--lang", help="Answer as if the sender had chosen this language (code or name).")
@click.option("--json", "as_json", is_flag=True, help="Print the reply with its level, topic and SMS size.")
@click.option("--jsonl", is_flag=True, help='Read {"text", "from", "lang"} JSON lines on stdin.')
@click.argument("text", nargs=-1)
@with_appcontext
def ask_command(lang: str | None, as_json: bool, jsonl: bool, text: tuple[str, ...]) -> None:
    """Print the reply to TEXT as a caregiver's phone would show it."""
    assistant = _assistant()
    if jsonl:
        states: dict[str, State] = {}
        for n, line in enumerate(sys.stdin, 1):
            if not line.strip():
                continue
            try:
                item = json.loads(line)
                if not isinstance(item, dict):
                    raise ValueError("not an object")
            except ValueError as exc:
                click.echo(json.dumps({"error": f"line {n}: {exc}", "topic": None, "level": None,
                                       "locale": None, "reply": None, "segments": 0, "encoding": None}))
                continue
            sender = item.get("from")
            state = states.get(sender, State()) if sender else State()
            reply = assistant.reply(str(item.get("text") or ""), state, lang=item.get("lang") or lang)
            if sender:
                states[sender] = reply.state
            click.echo(json.dumps(reply.as_dict(), ensure_ascii=False))
        return
    if not text:
        raise click.UsageError("give the TEXT to answer, or --jsonl")
    reply = assistant.reply(" ".join(text), State(), lang=lang)
    if as_json:
        click.echo(json.dumps(reply.as_dict(), ensure_ascii=False, indent=2))
    else:
        click.echo(reply.text if reply.text is not None else "(no reply is sent)")
        click.echo(f"-- {reply.level}, {reply.topic or 'no topic'}, {reply.locale}, "
                   f"{reply.segments} segment(s) {reply.encoding}", err=True)


# Characters of scripts written without spaces between words (Chinese, Japanese): a line may end after any.
_UNSPACED = "[\u2e80-\u9fff\uf900-\ufaff\uff00-\uffef]"


def _columns(text: str) -> int:
    """How many terminal columns ``text`` takes: Chinese, Japanese, Korean characters take two."""
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 0 if unicodedata.combining(c) else 1
               for c in text)


def wrap(text: str, width: int, *, first: str = "", rest: str = "") -> str:
    """``text`` in lines of at most ``width`` terminal columns, cut between words, or between two
    characters of a script written without spaces (Chinese), never inside a word or a number."""
    # A phone number's own spaces ("+1 617-555-0142") are not places to cut.
    text = NUMBER.sub(lambda m: m.group().replace(" ", "\0"), " ".join(text.split()))
    pieces = re.findall(rf" +|{_UNSPACED}|(?:(?!{_UNSPACED})[^ ])+", text)
    lines, line, indent = [], "", first
    for piece in pieces:
        if piece.startswith(" "):
            if line:
                line += " "
            continue
        if line and _columns(indent + line + piece) > width:
            lines.append(indent + line.rstrip())
            line, indent = "", rest
        line += piece
    if line or not lines:
        lines.append(indent + line.rstrip())
    return "\n".join(lines).replace("\0", " ")


@click.command("chat")
@with_appcontext
def chat_command() -> None:
    """Talk to the assistant in the terminal, as one sender (Ctrl-D to quit)."""
    assistant = _assistant()
    state = State()
    click.echo("Text the assistant as a caregiver would (try FEVER, MENU, LANG, fiebre). Ctrl-D quits.")
    while True:
        try:
            text = input("you> ")
        except (EOFError, KeyboardInterrupt):
            click.echo()
            return
        reply = assistant.reply(text, state)
        state = reply.state
        shown = reply.text if reply.text is not None else "(nothing is sent)"
        # Wrapped at word boundaries to the terminal's width, as a phone would.
        width = max(40, shutil.get_terminal_size().columns - 1)
        click.echo(wrap(shown, width, first="phone> ", rest=" " * 7))
        click.echo(f"       [{reply.level}, {reply.segments} segment(s) {reply.encoding}]")


catalog_group = AppGroup("catalog", help="Check and list the message catalogs (messages/, locales/).")


@catalog_group.command("check")
@click.argument("directory", required=False, type=click.Path(exists=True, file_okay=False))
@click.option("--strict", is_flag=True, help="Fail on warnings too.")
def catalog_check_command(directory: str | None, strict: bool) -> None:
    """Check DIRECTORY's messages/ and locales/ (default: what the service serves, the live revision) and list
    what to fix, errors first, each with its language, file and line; exit 1 on errors."""
    from .catalog_commands import check_command

    check_command(directory, strict)


@catalog_group.command("unreviewed")
@click.option("--locale", help="Only this language.")
def catalog_unreviewed_command(locale: str | None) -> None:
    """List entries not yet reviewed by a qualified medical translator (marked fuzzy / "Needs work")."""
    catalog = _assistant().store.current
    rows = list(catalog.unreviewed(locale))
    for loc, ctx in rows:
        click.echo(f"{loc}\t{ctx}")
    click.echo(f"{len(rows)} unreviewed entries", err=True)


@catalog_group.command("carry")
def catalog_carry_command() -> None:
    """After `pybabel update`: keep the translation of every entry whose English changed.

    gettext matches a changed English text to its old translation only when the two look alike, so a
    word list that grew loses its translation. Our entries are named by their msgctxt: the old
    translation of the same msgctxt is carried over, marked fuzzy (needs review), with the old English
    kept as the previous text for the translator."""
    from pathlib import Path

    from babel.messages.pofile import read_po, write_po

    from .catalog import SOURCE_LOCALE

    settings = current_app.config["SETTINGS"]
    for path in sorted(Path(settings.locales_dir).glob("*/LC_MESSAGES/messages.po")):
        with path.open("rb") as fh:
            po = read_po(fh)
        current = {m.context: m for m in po if m.id}
        carried = 0
        for m in current.values():
            # Babel reads a "#| msgid" previous text back as a translator comment "| msgid": drop those, the
            # previous text is set again below where it still applies.
            m.user_comments = [c for c in m.user_comments if not c.lstrip().startswith("|")]
        if path.parent.parent.name == SOURCE_LOCALE:  # the English catalog says what the source says
            for m in current.values():
                if not m.string or "fuzzy" in m.flags:
                    m.string, m.previous_id = m.id, []
                    m.flags.discard("fuzzy")
            po.obsolete.clear()
        for key, old in list(po.obsolete.items()):
            new = current.get(old.context)
            if new is None:
                continue
            if not new.string and old.string:
                new.string = old.string
                new.flags.add("fuzzy")
                new.previous_id = [old.id] if isinstance(old.id, str) else list(old.id)
                carried += 1
            del po.obsolete[key]
        with path.open("wb") as fh:
            write_po(fh, po, width=None, include_previous=True)
        if carried:
            click.echo(f"{path}: {carried} translation(s) of changed English carried over, marked for review")


COVERAGE_MINIMUM = 3  # fewer phrases than this for a symptom rule in a language is shown as a gap


@catalog_group.command("coverage")
@click.option("--minimum", default=COVERAGE_MINIMUM, show_default=True,
              help="A rule with fewer phrases than this in a language is a gap.")
@click.option("--strict", is_flag=True, help="Exit 1 when there is a gap.")
def catalog_coverage_command(minimum: int, strict: bool) -> None:
    """For every triage rule, symptom topic and safety word list: how many phrases each language has.

    A gap (marked with !) is a rule a language covers with fewer than --minimum phrases of its own:
    texts in that language may then miss the symptom."""
    catalog = _assistant().store.current
    # A rule that counts only when negated ("not breathing") holds a few word stems by design: no gap.
    stems_only = {f"rule:{r.id}:phrases" for r in catalog.source.rules if r.level == "none"}
    rows = [(f"rule:{r.id}:phrases", f"{r.id} ({r.level if r.level != 'none' else r.when_negated})")
            for r in catalog.source.rules]
    rows += [(f"topic:{t.id}:keywords", f"{t.id} (topic, {t.level})") for t in catalog.source.topics
             if t.level == "call_now"]
    rows += [(f"cue:{c}", f"{c} (cue)") for c in ("negation", "negation_after", "persisting", "unsure",
                                                   "common_words")]
    rows += [("command:stop", "stop (opt-out)"), ("command:start", "start (opt-in)")]
    width = max(len(label) for _c, label in rows) + 1
    click.echo(" " * width + "".join(f"{loc:>8}" for loc in catalog.languages))
    gaps = 0
    for context, label in rows:
        cells = []
        for loc in catalog.languages:
            n = len(catalog.lists.get(loc, {}).get(context, ()))
            gap = context.startswith(("rule:", "topic:")) and context not in stems_only and n < minimum
            gaps += gap
            cells.append(f"{n}{'!' if gap else ' '}".rjust(8))
        click.echo(f"{label:<{width}}" + "".join(cells))
    click.echo(f"{gaps} gap(s): rules with fewer than {minimum} phrases in a language (marked !)")
    if strict and gaps:
        sys.exit(1)


@click.command("eval")
@click.argument("files", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False))
@click.option("--show", default=20, show_default=True, help="How many misses to list.")
@click.option("--strict", is_flag=True, help="Exit 1 when a target is missed.")
@with_appcontext
def eval_command(files: tuple[str, ...], show: int, strict: bool) -> None:
    """Score the assistant on labelled texts (JSON lines: text, level, topic, locale), per language."""
    from pathlib import Path

    from .evaluation import TARGETS, evaluate, read_cases, table

    overall, by_language = evaluate(_assistant(), read_cases(Path(f) for f in files))
    click.echo(table(overall, by_language))
    for case, got in overall.misses[:show]:
        click.echo(f"MISS {case['text']!r}: want {case.get('level')}/{case.get('topic')}/{case.get('locale')}, "
                   f"got {got['level']}/{got['topic']}/{got['locale']}")
    below = overall.below_target
    click.echo("targets: " + ", ".join(f"{k} {'<=' if k == 'false_escalation' else '>='} {v}"
                                       for k, v in TARGETS.items()))
    click.echo(f"{len(overall.misses)} miss(es); " + (f"below target: {', '.join(below)}" if below
                                                        else "all targets met"))
    if strict and below:
        sys.exit(1)


def init_app(app: Flask) -> None:
    app.cli.add_command(ask_command)
    app.cli.add_command(chat_command)
    app.cli.add_command(eval_command)
    from .catalog_commands import register

    register(catalog_group)  # status, publish, history, show, rollback, pull, export, import, review
    app.cli.add_command(catalog_group)


def _create_app() -> Flask:
    from . import create_app

    return create_app()


class _AssistantGroup(FlaskGroup):
    """Flask's command group, with the assistant's own commands listed before Flask's (run, routes, shell)."""

    OWN = ("ask", "chat", "eval", "catalog", "db", "worker")

    def list_commands(self, ctx: click.Context) -> list[str]:
        names = super().list_commands(ctx)
        return [n for n in self.OWN if n in names] + [n for n in names if n not in self.OWN]


def _port_taken(host: str, port: int) -> str:
    """Why ``host:port`` cannot be listened on ("Address already in use"), or "" when it can: checked
    before the banner, so that the banner never names an address that is not served."""
    import socket

    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as exc:
        return exc.strerror or str(exc)
    family, _type, _proto, _name, address = infos[0]
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server itself binds
        try:
            probe.bind(address)
        except OSError as exc:
            return exc.strerror or str(exc)
    return ""


def _run_with_banner() -> click.Command:
    """Flask's ``run``, first saying in plain words where to open the simulator: the server's own banner is
    a JSON log line."""
    from flask.cli import run_command

    def callback(**kwargs):
        host, port = kwargs.get("host") or "127.0.0.1", kwargs.get("port") or 5000
        shown = f"[{host}]" if ":" in host else host
        taken = _port_taken(host, port)
        if taken:
            raise click.ClickException(
                f"cannot listen on {shown}:{port} ({taken}). Another program (another `make run`?) has it: "
                f"stop it, or use another port: PORT=5077 make run (or assistant run --port 5077).")
        click.echo(f"Caregiver Assistant: open http://{shown}:{port}/ for the phone simulator; the Twilio "
                   f"webhook is http://{shown}:{port}/sms. Ctrl+C stops.", err=True)
        return run_command.callback(**kwargs)

    return click.Command("run", callback=callback, params=run_command.params, help=run_command.help,
                         short_help=run_command.short_help)


main = _AssistantGroup(create_app=_create_app, add_default_commands=True, add_version_option=False,
                       help="Caregiver Assistant. Try: assistant ask FEVER")
# Flask's --app and --env-file load some other application: the assistant is always this one.
main.params = [p for p in main.params if p.name not in ("app", "env_file")]
click.version_option(package_name="caregiver-assistant", message="Caregiver Assistant %(version)s")(main)
main.add_command(_run_with_banner())

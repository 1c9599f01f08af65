"""Load test: gunicorn on loopback, signed /sms and /voice traffic (with their database writes) against bare
endpoints.

    python bench/load.py [--seconds 3] [--rounds 5] [--clients 4] [--databases sqlite,postgresql]
                         [--webhooks sms,voice]

For each database: starts gunicorn (the Procfile's settings: 4 workers, 2 threads) with the app plus a
bare Flask endpoint returning the same TwiML (bench/bare_app.py). The peak throughput of each is
measured with closed-loop clients in alternating phases (bare, /sms, bare, /sms...), so that a
slower or faster spell of the machine touches both alike; the ratio reported is the median of the
rounds' ratios, with their range. Then /sms (and /bare) are paced at 80 % of their own peak by twice
as many clients, each sending on a schedule, and p50/p99 latency is reported. Targets: /sms at least
half the bare throughput; p99 under 50 ms at 80 % of peak. All traffic stays on 127.0.0.1 and every
phase is bounded in time.

/voice is measured the same way against /bare-voice (a typical step's TwiML): a mix of a call's steps in
all twelve languages, each signed over its own URL: the call coming in (a database read of the caller), a
language chosen (its commit waited for), words said (the conversation core; symptoms escalate), a topic
picked from the list (texted in Haitian Creole and Somali: its commit waited for), the menu after an
answer (3 texts it), and the transfer's outcome (nobody answered: the number said and texted).
"""

from __future__ import annotations

import argparse
import http.client
import multiprocessing as mp
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parent.parent
TOKEN = "benchmarktoken000000000000000000"
PUBLIC = "https://bench.example.org"
THREADS = os.environ.get("BENCH_THREADS", "2")  # the Procfile's web: line: 4 workers, 2 threads
WORKERS = os.environ.get("BENCH_WORKERS", "4")
PG_URL = os.environ.get("BENCH_DATABASE_URL") or "postgresql://postgres@127.0.0.1:5432/caregiver_bench"
# Caregiver texts; SYMPTOMS escalate (a durable write of the escalation and its alerts before answering).
TEXTS = ["MAB", "what is a cancer vaccine", "ok thanks", "MENU", "3", "temp 37.2", "neutropenia", "HELP",
         "side effects", "lol", "LANG", "vacunas", "疲倦", "late effects", "MORE", "what are cytokines"]
SYMPTOMS = ["fever", "tiene fiebre", "my son has a temp of 38,5", "发烧", "chills", "she can't breathe"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


VOICE_LANGS = ["en", "es", "zh_Hans", "vi", "ko", "tl", "ru", "ar", "ht", "pt", "fr", "so"]  # every language
KEYPAD_ONLY = {"ht", "so"}  # no recognizer: a topic picked from the list is texted (its commit waited for)
# Words in the languages the SMS mix has none of; the others are in TEXTS and SYMPTOMS.
SPOKEN = {"ar": ["طفلي عنده حمى", "ما هو العلاج المناعي"], "tl": ["may lagnat ang anak ko", "ano ang immunotherapy"]}


def voice_step(rnd: random.Random, symptom_share: float) -> tuple[str, dict[str, str]]:
    """One step of a call, as Twilio would post it (its URL and the fields it adds), in any language."""
    lang = rnd.choice(VOICE_LANGS)
    kind = rnd.random()
    if kind < 0.15:
        return "/voice", {}
    if kind < 0.25:  # a language chosen: remembered for the number, its commit waited for
        return "/voice/language?n=1&page=1&try=0", {"Digits": str(rnd.randrange(1, 9))}
    if kind < 0.55 and lang not in KEYPAD_ONLY:
        words = rnd.choice(SYMPTOMS if rnd.random() < symptom_share * 2 else TEXTS + SPOKEN.get(lang, []))
        return f"/voice/answer?lang={lang}&n=2&try=0", {"SpeechResult": words, "Confidence": "0.87"}
    if kind < 0.7:  # seven topics a page (8: languages, 9: more); Haitian Creole and Somali get it texted
        return f"/voice/pick?lang={lang}&n=3&page=1&try=0", {"Digits": str(rnd.randrange(1, 8))}
    if kind < 0.85:  # after an answer: 3 texts it (its commit waited for)
        return f"/voice/after?lang={lang}&n=4&t=4&try=0", {"Digits": rnd.choice("123*")}
    # the transfer's outcome: nobody answered says the number and texts it (its commit waited for)
    return f"/voice/dial-status?lang={lang}&n=5", {"DialCallStatus": rnd.choice(["no-answer", "no-answer",
                                                                                 "busy", "completed"])}


def requests_for(path: str, n: int, seed: int, symptom_share: float) -> list[tuple[str, bytes, dict[str, str]]]:
    from twilio.request_validator import RequestValidator

    rnd = random.Random(seed)
    validator = RequestValidator(TOKEN)
    out = []
    for _ in range(n):
        if path == "/voice":  # a mix of a call's steps, each signed over its own URL
            step, fields = voice_step(rnd, symptom_share)
            form = {"CallSid": "CA" + uuid.uuid4().hex, "AccountSid": "AC" + "0" * 32,
                    "From": f"+1617555{rnd.randrange(10000):04d}", "To": "+16175550000", "CallStatus": "in-progress",
                    "Direction": "inbound", "ApiVersion": "2010-04-01", **fields}
            headers = {"Content-Type": "application/x-www-form-urlencoded",
                       "X-Twilio-Signature": validator.compute_signature(PUBLIC + step, form)}
            out.append((step, urlencode(form).encode(), headers))
            continue
        form = {"MessageSid": "SM" + uuid.uuid4().hex, "AccountSid": "AC" + "0" * 32, "From":
                f"+1617555{rnd.randrange(10000):04d}", "To": "+16175550000",
                "Body": rnd.choice(SYMPTOMS if rnd.random() < symptom_share else TEXTS),
                "NumMedia": "0", "ApiVersion": "2010-04-01"}
        headers = {"Content-Type": "application/x-www-form-urlencoded",
                   "X-Twilio-Signature": validator.compute_signature(PUBLIC + path, form)}
        out.append((path, urlencode(form).encode(), headers))
    return out


def client(port: int, path: str, reqs, deadline: float, interval: float, out: mp.Queue) -> None:
    """Send requests until the deadline: back to back (interval 0) or one every ``interval`` seconds."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    latencies, errors, i = [], 0, 0
    next_at = time.perf_counter()
    while time.perf_counter() < deadline and i < len(reqs):
        if interval:
            delay = next_at - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            next_at += interval
        step, body, headers = reqs[i]
        i += 1
        t = time.perf_counter()
        try:
            conn.request("POST", step, body=body, headers=headers)
            response = conn.getresponse()
            response.read()
            if response.status != 200:
                errors += 1
        except OSError:
            errors += 1
            conn.close()
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            continue
        latencies.append(time.perf_counter() - t)
    out.put((latencies, errors))


def drive(port: int, path: str, clients: int, seconds: float, rate: float | None = None,
          symptom_share: float = 0.125) -> dict:
    per_client = int((rate or 3000) * seconds / clients) + 10 if rate else 20000
    reqs = [requests_for(path, per_client, c, symptom_share) for c in range(clients)]
    queue: mp.Queue = mp.Queue()
    start = time.perf_counter() + 0.2
    deadline = start + seconds
    interval = clients / rate if rate else 0.0
    procs = [mp.Process(target=client, args=(port, path, reqs[c], deadline, interval, queue)) for c in range(clients)]
    for p in procs:
        p.start()
    results = [queue.get(timeout=seconds + 60) for _ in procs]
    for p in procs:
        p.join(timeout=10)
    latencies = sorted(x for lat, _ in results for x in lat)
    errors = sum(e for _, e in results)
    q = statistics.quantiles(latencies, n=100) if len(latencies) > 1 else [0.0] * 99
    return {"rps": len(latencies) / seconds, "p50": q[49] * 1000, "p99": q[98] * 1000, "n": len(latencies),
            "errors": errors}


def prepare(database: str, tmp: Path) -> str | None:
    sys.path.insert(0, str(ROOT))
    from assistant.db import normalise_url, upgrade

    if database == "sqlite":
        url = f"sqlite:///{tmp / 'bench.db'}"
    else:
        from sqlalchemy import create_engine, text

        base, _, name = PG_URL.rpartition("/")
        try:
            admin = create_engine(normalise_url(base + "/postgres"), isolation_level="AUTOCOMMIT")
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
                conn.execute(text(f'CREATE DATABASE "{name}"'))
            admin.dispose()
        except Exception as exc:  # no PostgreSQL here: skip it, say so
            print(f"postgresql: skipped ({type(exc).__name__}: {exc})")
            return None
        url = PG_URL
    upgrade(url)
    return url


def serve(url: str, port: int, log: Path, extra: dict[str, str] | None = None, tries: int = 100) -> subprocess.Popen:
    """gunicorn as the Procfile runs it, on ``port``, with the bench's settings (and ``extra``)."""
    env = {**os.environ, "DATABASE_URL": url, "TWILIO_AUTH_TOKEN": TOKEN, "PUBLIC_BASE_URL": PUBLIC,
           "CARE_TEAM_PHONE": "+1 617-555-0142", "ALERT_NUMBERS": "+16175550001",
           "LOG_LEVEL": os.environ.get("BENCH_LOG_LEVEL", "INFO"), **(extra or {})}
    cmd = [sys.executable, "-m", "gunicorn", "--workers", WORKERS, "--threads", THREADS, "--bind", f"127.0.0.1:{port}",
           "--pythonpath", str(ROOT / "bench"), "--chdir", str(ROOT), "bare_app:app"]
    proc = subprocess.Popen(cmd, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT, start_new_session=True)
    for _ in range(tries):
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return proc
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError(f"gunicorn did not start; see {log}")


def measure(port: int, path: str, bare_path: str, a) -> tuple[list, dict, dict, int]:
    """Peak rounds (bare, webhook) alternating, then both paced at 80 % of their own peak."""
    drive(port, path, a.clients, 1.0)  # warm-up: imports, caches, connections
    drive(port, bare_path, a.clients, 1.0)
    rounds = []
    for _ in range(a.rounds):
        bare = drive(port, bare_path, a.clients, a.seconds)
        hook = drive(port, path, a.clients, a.seconds, symptom_share=a.symptom_share)
        rounds.append((bare, hook))
    bare_rps = statistics.median(b["rps"] for b, _ in rounds)
    hook_rps = statistics.median(s["rps"] for _, s in rounds)
    paced = 2 * a.clients
    hook80 = drive(port, path, paced, 2 * a.seconds, rate=0.8 * hook_rps, symptom_share=a.symptom_share)
    bare80 = drive(port, bare_path, paced, 2 * a.seconds, rate=0.8 * bare_rps)
    return rounds, hook80, bare80, paced


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=3, help="length of each phase")
    ap.add_argument("--rounds", type=int, default=5, help="alternating bare and webhook peak phases")
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument("--databases", default="sqlite,postgresql")
    ap.add_argument("--webhooks", default="sms,voice", help="which webhooks to load: sms, voice or both")
    ap.add_argument("--symptom-share", type=float, default=0.125,
                    help="share of texts that describe a symptom and escalate (default: one in eight)")
    a = ap.parse_args()
    ok = True
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        for database in a.databases.split(","):
            url = prepare(database, tmp)
            if url is None:
                continue
            port = free_port()
            proc = serve(url, port, tmp / f"gunicorn-{database}.log")
            results = []
            try:
                for webhook in a.webhooks.split(","):
                    path, bare_path = {"sms": ("/sms", "/bare"), "voice": ("/voice", "/bare-voice")}[webhook]
                    results.append((webhook, path, bare_path, measure(port, path, bare_path, a)))
            finally:
                os.killpg(proc.pid, signal.SIGTERM)
                proc.wait(timeout=20)
            for webhook, path, bare_path, (rounds, hook80, bare80, paced) in results:
                ratios = sorted(s["rps"] / b["rps"] for b, s in rounds)
                ratio = statistics.median(ratios)
                errors = sum(s["errors"] for _, s in rounds) + hook80["errors"]
                # The targets: /sms half the bare throughput or more; both p99 < 50 ms at 80 % of peak.
                met = (ratio >= 0.5 or webhook != "sms") and hook80["p99"] < 50 and not errors
                ok &= met
                what = ("texts escalate" if webhook == "sms"
                        else f"35 % of steps are words said, of which symptoms: {min(1, 2 * a.symptom_share):.0%}")
                share = f": {a.symptom_share:.0%}" if webhook == "sms" else ""
                print(f"\n{database} {path}: gunicorn {WORKERS} workers x {THREADS} threads, {a.clients} "
                      f"client processes, {a.rounds} rounds of {a.seconds:.0f} s phases ({what}{share})")
                print(f"  {'endpoint':24} {'peak req/s':>10} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7}"
                      "   (median round)")
                for name, i in ((f"{bare_path} (same TwiML)", 0), (f"{path} (signed, db)", 1)):
                    r = sorted((x[i] for x in rounds), key=lambda x: x["rps"])[len(rounds) // 2]
                    print(f"  {name:24} {r['rps']:10.0f} {r['p50']:8.2f} {r['p99']:8.2f} "
                          f"{sum(x[i]['errors'] for x in rounds):7}")
                print(f"  at 80 % of peak ({paced} paced clients): {path} {hook80['rps']:.0f} req/s "
                      f"p50 {hook80['p50']:.2f} ms p99 {hook80['p99']:.2f} ms; {bare_path} {bare80['rps']:.0f} req/s "
                      f"p50 {bare80['p50']:.2f} ms p99 {bare80['p99']:.2f} ms")
                target = "; target >= 0.5" if webhook == "sms" else ""
                print(f"  {path} / bare throughput: {ratio:.2f} (rounds {ratios[0]:.2f}-{ratios[-1]:.2f}{target}); "
                      f"p99 at 80 %: {hook80['p99']:.1f} ms (target < 50; "
                      f"{hook80['p99'] / max(bare80['p99'], 1e-9):.1f}x the bare p99) -> {'met' if met else 'MISSED'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

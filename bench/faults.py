"""The outage scenario end to end: gunicorn with the Procfile's web line and two `assistant worker`
processes (the Procfile's worker line), PostgreSQL behind a loopback proxy that refuses, then stalls, and a
stand-in for Twilio's API. Signed texts arrive at a fixed rate through every phase; at the end it
prints what the care team and the caregivers got.

    .venv/bin/python bench/faults.py [--rate 5] [--phases up:5,refuse:20,up:8,stall:15,up:5]

Uses BENCH_DATABASE_URL (default: postgresql://postgres@127.0.0.1:5432/reliability), whose schema it
DROPS and recreates; everything listens on 127.0.0.1 only and every process it starts is stopped by
its own pid.
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import create_engine, text  # noqa: E402
from twilio.request_validator import RequestValidator  # noqa: E402

from assistant.db import normalise_url, upgrade  # noqa: E402
from tests.pgproxy import PgProxy, proxied_url  # noqa: E402
from tests.twilio_fake import FakeTwilio  # noqa: E402

TOKEN = "faultsbench0123456789abcdef01234"
ACCOUNT = "AC" + "f" * 32
PUBLIC = "https://faults.example.org"
CARE_TEAM = "+1 617-555-0142"
ON_CALL = ("+16175550001", "+16175550002")
SYMPTOMS = ("my child has a fever", "she can't breathe", "he has chills and is shaking", "fiebre")
OTHERS = ("MENU", "what is a cancer vaccine", "ok thanks", "MAB")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def procfile(kind: str) -> list[str]:
    line = next(x for x in (ROOT / "Procfile").read_text().splitlines() if x.startswith(f"{kind}:"))
    return shlex.split(line.split(":", 1)[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=float, default=5.0, help="texts per second")
    parser.add_argument("--phases", default="up:5,refuse:20,up:8,stall:15,up:5")
    parser.add_argument("--symptom-share", type=float, default=0.4)
    parser.add_argument("--settle", type=float, default=60.0, help="seconds to wait for the records afterwards")
    parser.add_argument("--alert-workers", type=int, default=2, help="`assistant worker` processes")
    parser.add_argument("--stop-races", type=int, default=30,
                        help="trials of STOP and another text from one number at once, after the outage")
    args = parser.parse_args()
    phases = [(mode, float(seconds)) for mode, seconds in (p.split(":") for p in args.phases.split(","))]

    url = os.environ.get("BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/reliability")
    engine = create_engine(normalise_url(url))
    with engine.begin() as conn:
        conn.execute(text("DROP SCHEMA IF EXISTS public CASCADE"))
        conn.execute(text("CREATE SCHEMA public"))
    upgrade(url)

    workdir = Path(tempfile.mkdtemp(prefix="faults-"))
    proxy, fake = PgProxy(), FakeTwilio(ACCOUNT, TOKEN)
    fake.__enter__()
    sends: list[tuple[float, str, str]] = []  # (time, to, body) of every SMS the stand-in accepted
    fake.on_send = lambda form: sends.append((time.time(), form.get("To", ""), form.get("Body", "")))
    port = free_port()
    env = {**os.environ, "ASSISTANT_ENV": "production", "TWILIO_AUTH_TOKEN": TOKEN, "TWILIO_ACCOUNT_SID": ACCOUNT,
           "TWILIO_FROM_NUMBER": "+16175550000", "PUBLIC_BASE_URL": PUBLIC, "CARE_TEAM_PHONE": CARE_TEAM,
           "ALERT_NUMBERS": ",".join(ON_CALL), "TWILIO_API_BASE_URL": fake.url,
           "DATABASE_URL": proxied_url(url, proxy.port), "SPOOL_PATH": str(workdir / "spool.db"),
           "PORT": str(port), "LOG_LEVEL": "WARNING", "PATH": f"{ROOT / '.venv' / 'bin'}:{os.environ['PATH']}"}
    web_cmd = [a.replace("0.0.0.0", "127.0.0.1") for a in procfile("web")]  # loopback only
    web_cmd = [os.path.expandvars(a.replace("${PORT:-8000}", str(port))) for a in web_cmd]
    web_cmd = [re.sub(r"\$\{(\w+):-(\w+)\}", lambda m: os.environ.get(m.group(1), m.group(2)), a) for a in web_cmd]
    logs = open(workdir / "processes.log", "wb")  # noqa: SIM115 - kept open for the children's lifetime
    web = subprocess.Popen(web_cmd, cwd=ROOT, env=env, stdout=logs, stderr=logs)
    workers = [subprocess.Popen(procfile("worker"), cwd=ROOT, env=env, stdout=logs, stderr=logs)
               for _ in range(args.alert_workers)]
    base = f"http://127.0.0.1:{port}"
    results: list[dict] = []
    lock = threading.Lock()
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(base + "/healthz", timeout=2) as r:
                    if r.status == 200:
                        break
            except Exception:
                time.sleep(0.3)
        else:
            raise SystemExit("gunicorn did not become healthy; see " + str(workdir / "processes.log"))

        validator = RequestValidator(TOKEN)

        def send(n: int, body: str, symptom: bool, phase: str) -> None:
            number = f"+1617555{n:04d}"
            form = {"MessageSid": "SM" + uuid.uuid4().hex, "From": number, "To": "+16175550000", "Body": body,
                    "NumMedia": "0", "AccountSid": ACCOUNT}
            data = urllib.parse.urlencode(form).encode()
            request = urllib.request.Request(base + "/sms", data=data, headers={
                "X-Twilio-Signature": validator.compute_signature(PUBLIC + "/sms", form)})
            started = time.time()
            status, answer = 0, ""
            try:
                with urllib.request.urlopen(request, timeout=30) as r:
                    status, answer = r.status, r.read().decode()
            except urllib.error.HTTPError as exc:
                status = exc.code
            except Exception as exc:  # no answer at all
                answer = repr(exc)
            with lock:
                results.append({"phone": number, "symptom": symptom, "phase": phase, "sent": started,
                                "latency": time.time() - started, "status": status,
                                "number_in_reply": CARE_TEAM in answer})

        pool = ThreadPoolExecutor(max_workers=32)
        n = 0
        for mode, seconds in phases:
            proxy.set(mode)
            print(f"{time.strftime('%H:%M:%S')} database {mode} for {seconds:.0f} s", flush=True)
            end = time.monotonic() + seconds
            while time.monotonic() < end:
                n += 1
                symptom = (n * args.symptom_share) % 1 < args.symptom_share
                body = SYMPTOMS[n % len(SYMPTOMS)] if symptom else OTHERS[n % len(OTHERS)]
                pool.submit(send, n, body, symptom, mode)
                time.sleep(1 / args.rate)
        proxy.set("up")
        pool.shutdown(wait=True)
        traffic_end = time.time()

        def post(number: str, body: str) -> str:
            form = {"MessageSid": "SM" + uuid.uuid4().hex, "From": number, "To": "+16175550000", "Body": body,
                    "NumMedia": "0", "AccountSid": ACCOUNT}
            request = urllib.request.Request(base + "/sms", data=urllib.parse.urlencode(form).encode(), headers={
                "X-Twilio-Signature": validator.compute_signature(PUBLIC + "/sms", form)})
            with urllib.request.urlopen(request, timeout=30) as r:
                return r.read().decode()

        # The review's check 6b: STOP and another text from one number 0-10 ms apart, on separate
        # connections (so, most often, separate gunicorn workers); then MENU must get nothing.
        undone = 0
        for trial in range(args.stop_races):
            number = f"+1617556{trial:04d}"
            barrier = threading.Barrier(2)

            def one(body: str, delay: float, number: str = number, barrier: threading.Barrier = barrier) -> None:
                barrier.wait()
                time.sleep(delay)
                post(number, body)

            racers = [threading.Thread(target=one, args=("STOP", 0.0)),
                      threading.Thread(target=one, args=("MAB", (trial % 3) * 0.005))]
            for t in racers:
                t.start()
            for t in racers:
                t.join()
            time.sleep(0.3)
            undone += "<Message>" in post(number, "MENU")

        # Wait for the spool to be written back and the worker to send what is due.
        symptom_phones = {r["phone"] for r in results if r["symptom"]}
        settle = time.monotonic() + args.settle
        escalations = 0
        while time.monotonic() < settle:
            with engine.connect() as conn:
                escalations = conn.execute(text("SELECT count(*) FROM escalations")).scalar()
                pending = conn.execute(text("SELECT count(*) FROM alert_outbox WHERE status IN "
                                            "('pending', 'sending')")).scalar()
            if escalations >= len(symptom_phones) and not pending:
                break
            time.sleep(1)
        with engine.connect() as conn:
            escalations = conn.execute(text("SELECT count(*) FROM escalations")).scalar()
            recorded = {row[0] for row in conn.execute(text("SELECT phone FROM escalations"))}
            messages = conn.execute(text("SELECT count(*) FROM inbound_messages "
                                         "WHERE phone NOT LIKE '+1617556%'")).scalar()  # not the STOP races
            outbox = dict(conn.execute(text("SELECT status, count(*) FROM alert_outbox GROUP BY status")).all())
        spool_left = 0
        if (workdir / "spool.db").exists():
            import sqlite3

            with sqlite3.connect(workdir / "spool.db") as spool:
                spool_left = spool.execute("SELECT count(*) FROM records").fetchone()[0]

        # The same escalation (a caregiver's number; each text came from its own) alerted twice to one
        # on-call number, whatever the body (an outbox alert and a direct one differ in their reference).
        pairs = [(to, m.group(1) if (m := re.search(r"caregiver at (\+\d+)", body)) else body)
                 for _t, to, body in sends]
        duplicates = len(pairs) - len(set(pairs))
        first_alert: dict[str, float] = {}
        for at, _to, body in sends:
            match = re.search(r"Call the caregiver at (\+\d+)", body)
            if match and match.group(1) not in first_alert:
                first_alert[match.group(1)] = at
        sent_at = {r["phone"]: r["sent"] for r in results}
        delays = [first_alert[p] - sent_at[p] for p in symptom_phones if p in first_alert]
        late = [r for r in results if r["latency"] > 5]
        symptoms = [r for r in results if r["symptom"]]
        by_phase: dict[str, list[int]] = {}
        for r in symptoms:
            by_phase.setdefault(r["phase"], [0, 0])[0] += 1
            by_phase[r["phase"]][1] += r["phone"] in recorded
        print()
        print(f"texts sent                    {len(results)} ({len(symptoms)} symptom texts)")
        print(f"answered 200 / 5xx / none     {sum(r['status'] == 200 for r in results)} / "
              f"{sum(r['status'] >= 500 for r in results)} / {sum(r['status'] == 0 for r in results)}")
        print(f"symptom replies with number   {sum(r['number_in_reply'] for r in symptoms)} of {len(symptoms)}")
        print(f"escalations recorded          {escalations} (of {len(symptoms)} symptom texts; "
              + ", ".join(f"{k}: {v[1]}/{v[0]}" for k, v in by_phase.items()) + ")")
        print(f"messages recorded             {messages} of {len(results)}")
        print(f"alerts sent (SMS to on-call)  {len(sends)} (expected {len(symptoms) * len(ON_CALL)}); "
              f"outbox {outbox}")
        print(f"duplicate SMS                 {duplicates} (an escalation alerted twice to one number)")
        print(f"answers later than 5 s        {len(late)} (max {max(r['latency'] for r in results):.2f} s, "
              f"p50 {sorted(r['latency'] for r in results)[len(results) // 2]:.3f} s)")
        phase_of = {r["phone"]: r["phase"] for r in results}
        worst: dict[str, float] = {}
        for p in symptom_phones:
            if p in first_alert:
                worst[phase_of[p]] = max(worst.get(phase_of[p], 0.0), first_alert[p] - sent_at[p])
        print(f"first alert after the text   max {max(delays):.1f} s ("
              + ", ".join(f"{k}: {v:.1f} s" for k, v in worst.items())
              + f"), over 60 s: {sum(d > 60 for d in delays)}, never: {len(symptom_phones) - len(delays)}, "
              f"sent before the traffic ended: {sum(first_alert[p] < traffic_end for p in first_alert)}")
        print(f"left in the spool             {spool_left}")
        with engine.connect() as conn:
            still_out = conn.execute(text("SELECT count(*) FROM senders WHERE phone LIKE '+1617556%' "
                                          "AND opted_out")).scalar()
        print(f"STOP races (0-10 ms apart)    {args.stop_races} trials: STOP undone {undone} "
              f"(MENU answered), opted out in the database {still_out} of {args.stop_races}")
        print(f"(logs: {workdir / 'processes.log'})")
    finally:
        for process in (web, *workers):
            process.send_signal(signal.SIGTERM)
        for process in (web, *workers):
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
        proxy.close()
        fake.__exit__(None, None, None)
        engine.dispose()


if __name__ == "__main__":
    main()

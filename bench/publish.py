"""Publishing to running workers: how long until every gunicorn worker answers with a new revision, and what
watching for new revisions costs each text.

    python bench/publish.py [--databases sqlite,postgresql] [--publishes 5] [--rounds 5] [--seconds 3]

For each database: two gunicorn servers (the Procfile's 4 workers x 2 threads) on the same database, one
watching for new revisions (the default, every 2 s), one with watching off (CATALOG_POLL_SECONDS=0: no
thread, no per-request hook; for this measurement only).

1. Delay: a revision with a new Spanish help text is published (the functions `assistant catalog publish`
   runs) while clients keep texting "ayuda" to the watching server. Reported: from the commit to the last
   worker's swap (each worker logs `catalog.swapped` with its time), and from the commit to the last reply
   with the old text; the text is changed back for the next publish.
2. Cost: peak /sms throughput of the two servers, measured alternately (off, on, off, on...) so a slower or
   faster spell of the machine touches both alike; the ratio is the median of the rounds' ratios.
All traffic stays on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import http.client
import json
import multiprocessing as mp
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import datetime
from pathlib import Path
from urllib.parse import urlencode

sys.path.insert(0, str(Path(__file__).resolve().parent))
from load import PUBLIC, ROOT, THREADS, TOKEN, WORKERS, drive, free_port, prepare
from load import serve as serve_gunicorn

# A letter, not a number, marks each publish: a digit in a safety text is refused by the checks.
NEW = "NUEVA AYUDA {n}: escriba FIEBRE o MENU. Emergencia: {{emergency}}. Equipo: {{care_team}}."


def serve(url: str, port: int, log: Path, poll: str) -> subprocess.Popen:
    """gunicorn as in bench/load.py, following revisions every ``poll`` seconds ("0": not at all)."""
    return serve_gunicorn(url, port, log, {"LOG_LEVEL": "INFO", "CATALOG_POLL_SECONDS": poll,
                                           "SPOOL_PATH": str(log.with_suffix(".spool"))}, tries=200)


def ask(port: int, body: str) -> str:
    from twilio.request_validator import RequestValidator

    form = {"MessageSid": "SM" + uuid.uuid4().hex, "AccountSid": "AC" + "0" * 32, "From": "+16175559999",
            "To": "+16175550000", "Body": body, "NumMedia": "0", "ApiVersion": "2010-04-01"}
    headers = {"Content-Type": "application/x-www-form-urlencoded",
               "X-Twilio-Signature": RequestValidator(TOKEN).compute_signature(PUBLIC + "/sms", form)}
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("POST", "/sms", body=urlencode(form).encode(), headers=headers)
    text = conn.getresponse().read().decode()
    conn.close()
    return text


def mark(n: int) -> str:
    return "ABCDEFGHIJKLMNOPQRSTUVWXYZ"[n % 26] * (1 + n // 26)


def content_with_help(n: int) -> dict[str, bytes]:
    from assistant.catalogcheck import read_tree
    from assistant.pofile import parse_po

    content = read_tree(ROOT)
    path = "locales/es/LC_MESSAGES/messages.po"
    text = content[path].decode()
    old = parse_po(content[path]).by_context()["text:help"].msgstr
    content[path] = text.replace(f'msgstr "{old}"', 'msgstr "' + NEW.format(n=mark(n)) + '"', 1).encode()
    return content


def publish(url: str, content: dict[str, bytes], note: str) -> tuple[int, float]:
    """Store and make live, as `assistant catalog publish` does; the revision and the commit time."""
    from sqlalchemy.orm import sessionmaker

    from assistant.catalogcheck import check_content, read_tree
    from assistant.db import make_engine
    from assistant.revisions import store

    report = check_content(content)  # the check runs before the commit, as in the command: not in the delay
    engine = make_engine(url)
    with sessionmaker(engine)() as session:
        done = store(session, content, by="bench", note=note, kind="publish", repository=read_tree(ROOT),
                     report=report)
        committed = time.time()
        revision = done.revision.id
    engine.dispose()
    return revision, committed


def swaps(log: Path, revision: int) -> list[float]:
    out = []
    with log.open(errors="replace") as fh:
        for line in fh:
            if '"catalog.swapped"' not in line:
                continue
            try:
                rec = json.loads(line)
            except ValueError:
                continue
            if rec.get("revision") == revision:
                out.append(datetime.fromisoformat(rec["ts"]).timestamp())
    return out


def texting(port: int, marker: str, rate: float, stop_at: float, out: mp.Queue) -> None:
    """Text "ayuda" at ``rate`` per second until ``stop_at``; report (time, old text?, seconds) per reply."""
    got, failed = [], 0
    next_at = time.time()
    while time.time() < stop_at:
        delay = next_at - time.time()
        if delay > 0:
            time.sleep(delay)
        next_at += 1 / rate
        t = time.perf_counter()
        try:
            reply = ask(port, "ayuda")
        except OSError:  # a timeout (10 s): counted
            failed += 1
            if os.environ.get("BENCH_DEBUG"):
                print(f"timeout: sent at {time.time() - (time.perf_counter() - t):.2f}", flush=True)
            continue
        got.append((time.time(), marker not in reply, time.perf_counter() - t))
    out.put((got, failed))


def measure_delay(url: str, port: int, log: Path, n: int, marker: str, rate: float) -> tuple[float, float, float, int]:
    """Publish while two processes text at ``rate`` each: (to the last worker's swap, to the last old reply,
    the slowest reply, replies that took over 10 s)."""
    queue: mp.Queue = mp.Queue()
    stop_at = time.time() + 25
    procs = [mp.Process(target=texting, args=(port, marker, rate, stop_at, queue)) for _ in range(2)]
    for p in procs:
        p.start()
    time.sleep(1.0)
    revision, committed = publish(url, content_with_help(n), f"bench {n}")
    results = [queue.get(timeout=60) for _ in procs]
    for p in procs:
        p.join(timeout=10)
    got = swaps(log, revision)
    if os.environ.get("BENCH_DEBUG"):
        print(f"committed {committed:.2f}; swaps {[round(g, 2) for g in got]}", flush=True)
    if len(got) < int(WORKERS):
        raise RuntimeError(f"only {len(got)} of {WORKERS} workers swapped to revision #{revision}; see {log}")
    replies = [r for rs, _ in results for r in rs]
    last_old = max((t for t, old, _ in replies if old), default=committed)
    slowest = max((s for t, _o, s in replies if t >= committed), default=0.0)
    return max(got) - committed, max(0.0, last_old - committed), slowest, sum(f for _, f in results)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--databases", default="sqlite,postgresql")
    ap.add_argument("--publishes", type=int, default=5)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--seconds", type=float, default=3)
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument("--rate", type=float, default=25, help="texts per second of each of the 2 texting processes "
                    "during a publish")
    a = ap.parse_args()
    sys.path.insert(0, str(ROOT))
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        for database in a.databases.split(","):
            url = prepare(database, tmp)
            if url is None:
                continue
            on_port, off_port = free_port(), free_port()
            on_log, off_log = tmp / f"on-{database}.log", tmp / f"off-{database}.log"
            on = serve(url, on_port, on_log, "2")
            off = serve(url, off_port, off_log, "0")
            try:
                for port in (on_port, off_port):  # until every worker has booted (each loads the catalog)
                    ready_at = time.time() + 60
                    while time.time() < ready_at and drive(port, "/sms", a.clients, 1.0)["p99"] > 100:
                        pass
                time.sleep(3)
                delays = []
                for n in range(1, a.publishes + 1):
                    delays.append(measure_delay(url, on_port, on_log, n, f"NUEVA AYUDA {mark(n)}:", a.rate))
                drive(on_port, "/sms", a.clients, 1.0)  # warm-up
                drive(off_port, "/sms", a.clients, 1.0)
                rounds = []
                for _ in range(a.rounds):
                    r_off = drive(off_port, "/sms", a.clients, a.seconds)
                    r_on = drive(on_port, "/sms", a.clients, a.seconds)
                    rounds.append((r_off, r_on))
            finally:
                for proc in (on, off):
                    os.killpg(proc.pid, signal.SIGTERM)
                    proc.wait(timeout=20)
            swap = sorted(d[0] for d in delays)
            old = sorted(d[1] for d in delays)
            ratios = sorted(r_on["rps"] / r_off["rps"] for r_off, r_on in rounds)
            print(f"\n{database}: gunicorn {WORKERS} workers x {THREADS} threads; {a.publishes} publishes; "
                  f"{a.rounds} alternating rounds of {a.seconds:.0f} s, {a.clients} client processes")
            print(f"  publish -> every worker swapped: median {statistics.median(swap):.2f} s, worst {swap[-1]:.2f} s")
            print(f"  publish -> last reply with the old text: median {statistics.median(old):.2f} s, "
                  f"worst {old[-1]:.2f} s")
            print(f"  while {2 * a.rate:.0f} texts/s: slowest reply after a publish {max(d[2] for d in delays):.2f} s; "
                  f"replies over 10 s: "
                  f"{sum(d[3] for d in delays)}")
            med_off = statistics.median(r["rps"] for r, _ in rounds)
            med_on = statistics.median(r["rps"] for _, r in rounds)
            print(f"  /sms peak req/s: watching off {med_off:.0f}, watching on {med_on:.0f}; on/off median "
                  f"{statistics.median(ratios):.3f} (rounds {ratios[0]:.3f}-{ratios[-1]:.3f}); errors "
                  f"{sum(r['errors'] for x in rounds for r in x)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

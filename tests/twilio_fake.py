"""A local HTTP server standing in for api.twilio.com's Messages endpoint, for the real twilio Client."""

from __future__ import annotations

import base64
import json
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit


class FakeTwilio:
    def __init__(self, account_sid: str, auth_token: str) -> None:
        self.account_sid, self.auth_token = account_sid, auth_token
        self.sent: list[dict[str, str]] = []
        self.failures: list[tuple[int, int]] = []  # (HTTP status, Twilio error code) for the next calls
        # Seconds to wait before answering the next calls; the message is created first (a slow API
        # that did send, as Twilio's can be).
        self.delays: list[float] = []
        self.on_send = None  # called with the form once a message is created, before the answer
        self.calls = 0
        self.lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep test output clean
                pass

            def do_GET(self):
                """Messages.json?To=...: the list Twilio keeps, newest first (for reconciling)."""
                url = urlsplit(self.path)
                if url.path != f"/2010-04-01/Accounts/{fake.account_sid}/Messages.json":
                    return self._reply(404, {"code": 20404, "message": "not found", "status": 404})
                query = {k: v[0] for k, v in parse_qs(url.query).items()}
                with fake.lock:
                    found = [m for m in reversed(fake.sent) if "To" not in query or m["To"] == query["To"]]
                messages = [{"sid": m["Sid"], "to": m["To"], "from": m.get("From"), "body": m["Body"],
                             "status": "sent", "account_sid": fake.account_sid} for m in found]
                self._reply(200, {"messages": messages, "end": len(messages), "first_page_uri": url.path,
                                  "next_page_uri": None, "page": 0, "page_size": 50, "previous_page_uri": None,
                                  "start": 0, "uri": self.path})

            def do_POST(self):
                expected = "Basic " + base64.b64encode(f"{fake.account_sid}:{fake.auth_token}".encode()).decode()
                length = int(self.headers.get("Content-Length") or 0)
                form = {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode()).items()}
                if self.path != f"/2010-04-01/Accounts/{fake.account_sid}/Messages.json":
                    return self._reply(404, {"code": 20404, "message": "not found", "status": 404})
                if self.headers.get("Authorization") != expected:
                    return self._reply(401, {"code": 20003, "message": "Authenticate", "status": 401})
                with fake.lock:
                    fake.calls += 1
                    failure = fake.failures.pop(0) if fake.failures else None
                    delay = fake.delays.pop(0) if fake.delays else 0.0
                    if failure is None:
                        sid = "SM" + uuid.uuid4().hex
                        fake.sent.append({**form, "Sid": sid})
                if failure is None and fake.on_send is not None:
                    fake.on_send(form)
                if delay:
                    time.sleep(delay)
                if failure:
                    status, code = failure
                    return self._reply(status, {"code": code, "message": "simulated failure", "status": status})
                self._reply(201, {"sid": sid, "status": "queued", "to": form.get("To"), "from": form.get("From"),
                                  "body": form.get("Body"), "account_sid": fake.account_sid,
                                  "messaging_service_sid": form.get("MessagingServiceSid")})

            def _reply(self, status, data):
                payload = json.dumps(data).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> FakeTwilio:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()

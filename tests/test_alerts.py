"""Care-team alerts: sent by the worker through the real twilio Client, retried, never sent twice."""

import threading
from datetime import timedelta

import pytest
from sqlalchemy import select, update

from assistant import alerts
from assistant.models import Alert, utcnow

from .conftest import ALERTS, CAREGIVER, post_signed, text_sms


def rows(app):
    assert app.extensions["recorder"].flush()
    with app.extensions["sessionmaker"]() as session:
        return session.scalars(select(Alert).order_by(Alert.id)).all()


def make_due(app):
    with app.extensions["sessionmaker"]() as session, session.begin():
        session.execute(update(Alert).values(next_attempt_at=utcnow() - timedelta(seconds=1)))


def test_worker_sends_each_alert_through_twilio(sms_app, sms_client, fake_twilio):
    text_sms(sms_client, "my son has a fever")
    assert alerts.run_once(sms_app) == len(ALERTS)
    assert sorted(m["To"] for m in fake_twilio.sent) == sorted(ALERTS)
    message = fake_twilio.sent[0]
    assert message["From"] == "+16175550000"
    assert message["StatusCallback"] == "https://assistant.example.org/sms/status"
    assert "CALL NOW" in message["Body"] and "fever" in message["Body"] and CAREGIVER in message["Body"]
    assert "my son" not in message["Body"]  # never the caregiver's words
    assert {(a.status, a.attempts) for a in rows(sms_app)} == {("sent", 0)}
    assert {a.twilio_sid for a in rows(sms_app)} == {m["Sid"] for m in fake_twilio.sent}
    assert alerts.run_once(sms_app) == 0  # nothing left to send


def test_messaging_service_is_used_when_set(sms_app, sms_client, fake_twilio):
    sms_app.config["TWILIO_MESSAGING_SERVICE_SID"] = "MG" + "2" * 32
    text_sms(sms_client, "seizure")
    alerts.run_once(sms_app)
    assert fake_twilio.sent[0]["MessagingServiceSid"] == "MG" + "2" * 32 and "From" not in fake_twilio.sent[0]


def test_status_callback_records_delivery_and_failure(sms_app, sms_client, fake_twilio):
    text_sms(sms_client, "fever")
    alerts.run_once(sms_app)
    first, second = fake_twilio.sent
    for sid, status, code in ((first["Sid"], "delivered", None), (second["Sid"], "undelivered", "30003")):
        form = {"MessageSid": sid, "MessageStatus": status, "AccountSid": "AC" + "1" * 32}
        if code:
            form["ErrorCode"] = code
        assert post_signed(sms_client, "/sms/status", form).status_code == 204
    by_sid = {a.twilio_sid: a for a in rows(sms_app)}
    assert by_sid[first["Sid"]].status == "delivered" and by_sid[first["Sid"]].delivered_at
    assert by_sid[second["Sid"]].status == "undelivered" and "30003" in by_sid[second["Sid"]].error


def test_server_errors_are_retried_with_backoff(sms_app, sms_client, fake_twilio):
    text_sms(sms_client, "chills")
    fake_twilio.failures = [(500, 20500), (503, 20503)]
    alerts.run_once(sms_app)
    failed = [a for a in rows(sms_app) if a.status == "pending"]
    assert len(failed) == 2 and all(a.attempts == 1 for a in failed)
    assert all(a.next_attempt_at > utcnow() + timedelta(seconds=3) for a in failed)  # not due yet
    assert alerts.run_once(sms_app) == 0
    make_due(sms_app)
    assert alerts.run_once(sms_app) == 2
    assert {a.status for a in rows(sms_app)} == {"sent"}
    assert len(fake_twilio.sent) == 2


def test_backoff_grows_and_gives_up(sms_app, sms_client, fake_twilio, monkeypatch):
    text_sms(sms_client, "chills")
    sms_app.config["ALERT_NUMBERS"] = ALERTS[0]
    delays = []
    for _attempt in range(alerts.MAX_ATTEMPTS):
        fake_twilio.failures = [(500, 20500)] * 2
        make_due(sms_app)
        alerts.run_once(sms_app)
        pending = [a for a in rows(sms_app) if a.status == "pending"]
        if pending:
            delays.append((pending[0].next_attempt_at - utcnow()).total_seconds())
    assert delays == sorted(delays) and delays[1] > delays[0] * 1.5
    assert {a.status for a in rows(sms_app)} == {"failed"}
    assert all(a.attempts == alerts.MAX_ATTEMPTS for a in rows(sms_app))


def test_permanent_errors_are_not_retried(sms_app, sms_client, fake_twilio):
    text_sms(sms_client, "chills")
    fake_twilio.failures = [(400, 21211)]  # invalid 'To' number
    alerts.run_once(sms_app)
    statuses = sorted(a.status for a in rows(sms_app))
    assert statuses == ["failed", "sent"]
    assert "21211" in next(a.error for a in rows(sms_app) if a.status == "failed")


def test_twilio_unreachable_is_retried(sms_app, sms_client):
    text_sms(sms_client, "chills")
    sms_app.config["TWILIO_API_BASE_URL"] = "http://127.0.0.1:1"
    alerts.run_once(sms_app)
    # Retried later; "sending": whether a request that got no answer reached Twilio is not known.
    assert {(a.status, a.attempts) for a in rows(sms_app)} == {("sending", 1)}
    assert all(a.next_attempt_at > utcnow() and a.locked_until is None for a in rows(sms_app))


def test_several_workers_never_send_the_same_alert_twice(sms_app, sms_client, fake_twilio):
    for i in range(15):
        text_sms(sms_client, f"fever {i}", sender=f"+1617555{i:04d}")
    total = 15 * len(ALERTS)
    barrier = threading.Barrier(4)
    errors = []

    def work(n):
        try:
            barrier.wait()
            alerts.run_once(sms_app, worker=f"w{n}")
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len(fake_twilio.sent) == total
    assert len({(m["To"], m["Body"]) for m in fake_twilio.sent}) == total
    assert {a.status for a in rows(sms_app)} == {"sent"}


def test_a_crashed_workers_claim_expires(sms_app, sms_client, fake_twilio):
    text_sms(sms_client, "fever")
    factory = sms_app.extensions["sessionmaker"]
    claimed = alerts.claim(factory, "crashed-worker")
    assert len(claimed) == len(ALERTS)
    assert alerts.run_once(sms_app) == 0  # still locked by the crashed worker
    with factory() as session, session.begin():
        session.execute(update(Alert).values(locked_until=utcnow() - timedelta(seconds=1)))
    assert alerts.run_once(sms_app) == len(ALERTS)


@pytest.mark.parametrize("numbers", ["", " , "])
def test_no_alert_numbers_no_alerts(sms_app, sms_client, numbers):
    sms_app.config["ALERT_NUMBERS"] = numbers
    text_sms(sms_client, "fever")
    assert rows(sms_app) == []


def test_worker_command_once(sms_app, sms_client, fake_twilio):
    text_sms(sms_client, "fever")
    result = sms_app.test_cli_runner().invoke(args=["worker", "--once"])
    assert result.exit_code == 0, result.output
    assert len(fake_twilio.sent) == len(ALERTS)

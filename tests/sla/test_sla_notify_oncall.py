"""A breach pushed to whoever is on call (``sla.notify_oncall``), by the watch of a running
server on its own: the rotation's current member is the user of that e-mail address (any case),
and only that user's browsers get it, through a fake Web Push service on loopback."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.push.fake_push import fake_push_service
from tests.push.helpers import KEY, PASSWORD, PushEnv, push_settings
from tests.sla.notify_helpers import old_alert
from tests.support.server import run_server

pytestmark = pytest.mark.xdist_group("push_delivery")


def test_the_on_call_user_gets_a_push_of_the_breach(tmp_path: Path, database_url: str) -> None:
    settings = push_settings(tmp_path, database_url, min_severity=10)
    sla = settings.sla.model_copy(update={"interval_s": 1.0, "notify_oncall": "primary"})
    settings = settings.model_copy(update={"sla": sla})
    with fake_push_service() as fake, run_server(settings) as s, s.client() as c:
        s.aw.auth.users.create("admin@example.com", PASSWORD, "admin")
        token = c.post("/api/v1/auth/login", json={"email": "admin@example.com", "password": PASSWORD}).json()
        admin = {"Authorization": f"Bearer {token['access_token']}"}
        fake.public_key = c.get(KEY, headers=admin).json()["public_key"]
        env = PushEnv(s, c, fake, admin)
        alice_id, alice = env.user("analyst")
        bob_id, bob = env.user("analyst")
        phone, _ = env.subscribe(alice, "alice-phone")
        other, _ = env.subscribe(bob, "bob-phone")
        alice_email = s.aw.auth.users.get(alice_id).email
        bob_email = s.aw.auth.users.get(bob_id).email
        start = datetime.fromtimestamp(time.time() - 3600, UTC).isoformat()
        rotation = {"name": "primary", "members": [alice_email.upper(), bob_email], "shift_hours": 12, "start": start}
        r = c.post("/api/v1/oncall/rotations", json=rotation, headers=admin)
        assert r.status_code == 201, r.text
        aid = old_alert(s.aw.engine, 9, 1800)  # critical, 15 min past its acknowledge limit
        deadline = time.monotonic() + 15
        while not phone.received and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(1.5)  # another pass or two: nothing more is sent
        assert fake.refused == []
        (got,) = phone.received
        payload = got["payload"]
        assert (payload["type"], payload["alert_id"], payload["severity"]) == ("sla_breach", aid, 9)
        assert payload["kind"] == "acknowledge" and payload["band"] == "critical"
        assert got["urgency"] == "high"
        assert other.received == []
        events = c.get("/api/v1/sla/events", params={"alert_id": aid}, headers=admin).json()["events"]
        assert [e["notify"]["state"] for e in events] == ["sent"]

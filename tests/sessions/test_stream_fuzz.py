"""``GET /stream`` opened with generated ``Last-Event-ID`` headers and ``session_id``
filters, on both stores: each is refused with a 400 naming the field, or streams, starting
with the ``connected`` frame. Examples are the same on every run (``derandomize``).
"""

from __future__ import annotations

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.mutations import text
from tests.support.server import RunningServer

# What a header may carry (visible Latin-1, spaces inside); anything else the client refuses to send
header_text = st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0xFF, exclude_characters="\x7f")).map(
    lambda s: s.strip(" ")
)


@given(last_event_id=st.none() | header_text, session_id=st.none() | text)
@settings(max_examples=100, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
def test_stream_opens_or_refuses_whatever_resume_point_and_filter(
    open_server: RunningServer, last_event_id: str | None, session_id: str | None
) -> None:
    headers = {} if last_event_id is None else {"Last-Event-ID": last_event_id.encode("latin-1")}
    params = {} if session_id is None else {"session_id": session_id}
    with open_server.client() as c, c.stream("GET", "/stream", headers=headers, params=params) as resp:
        if resp.status_code == 400:
            resp.read()
            assert resp.json()["error"]["message"].split(":")[0] in ("Last-Event-ID", "session_id"), resp.text
            return
        assert resp.status_code == 200
        for line in resp.iter_lines():
            if line.startswith("data: "):
                assert orjson.loads(line[6:])["type"] == "connected"
                break

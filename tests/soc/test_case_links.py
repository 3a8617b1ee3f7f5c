"""Adding one alert to a case (``cases.store.link_alert``, what playbooks use) never loses a link
another writer added at the same moment, and is bounded like the cases API."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import Engine

from agentwatch.soc.cases import store
from tests.soc.helpers import MISSING, make_alert


def new_case(engine: Engine) -> str:
    return store.create_case(engine, {"title": "links", "severity": 5, "status": "open", "alert_ids": []}, "t")


def test_concurrent_links_of_different_alerts_all_land(engine: Engine) -> None:
    case_id = new_case(engine)
    alert_ids = [make_alert(engine) for _ in range(8)]
    with ThreadPoolExecutor(8) as pool:
        answers = list(
            pool.map(lambda a: store.link_alert(engine, case_id, a, "playbook:p", "Alert added", 1000), alert_ids)
        )
    assert answers == [True] * 8
    case = store.get_case(engine, case_id)
    assert sorted(case["alert_ids"]) == sorted(alert_ids)
    # the case's change history has the creation and one entry per link
    assert [e["title"] for e in case["timeline"]].count("Alert added") == 8


def test_a_second_link_is_false_and_the_bounds_hold(engine: Engine) -> None:
    case_id = new_case(engine)
    first, second, third = (make_alert(engine) for _ in range(3))
    assert store.link_alert(engine, case_id, first, "t", "Alert added", 2) is True
    assert store.link_alert(engine, case_id, first, "t", "Alert added", 2) is False
    assert store.link_alert(engine, case_id, second, "t", "Alert added", 2) is True
    with pytest.raises(store.CaseFull, match="already holds 2 alerts"):
        store.link_alert(engine, case_id, third, "t", "Alert added", 2)
    assert store.get_case(engine, case_id)["alert_ids"] == [first, second]
    assert store.link_alert(engine, MISSING, third, "t", "Alert added", 2) is None
    with pytest.raises(store.UnknownAlerts):
        store.link_alert(engine, case_id, MISSING, "t", "Alert added", 5)

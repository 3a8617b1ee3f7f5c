"""OCSF events as a sender would write them, for the alert intake tests."""

from __future__ import annotations

import time
import uuid
from typing import Any


def now_ms() -> int:
    return int(time.time() * 1000)


def tag() -> str:
    return uuid.uuid4().hex[:10]


def process_launch(host: str, **more: Any) -> dict[str, Any]:
    return {
        "class_uid": 1007,
        "activity_id": 1,
        "time": now_ms(),
        "severity_id": 4,
        "device": {"hostname": host},
        "actor": {"user": {"name": "alice"}},
        "process": {"pid": 4242, "name": "curl", "file": {"path": "/usr/bin/curl"}, "cmd_line": "curl http://x"},
        **more,
    }


def network_open(host: str, ip: str, **more: Any) -> dict[str, Any]:
    return {
        "class_uid": 4001,
        "activity_id": 1,
        "time": now_ms(),
        "severity_id": 2,
        "device": {"hostname": host},
        "dst_endpoint": {"ip": ip, "port": 445},
        "src_endpoint": {"ip": "10.0.0.5", "port": 50123},
        "connection_info": {"protocol_name": "TCP"},
        **more,
    }


def dns_query(host: str, name: str) -> dict[str, Any]:
    return {
        "class_uid": 4003,
        "activity_id": 1,
        "time": now_ms(),
        "device": {"hostname": host},
        "query": {"hostname": name, "type": "a"},
        "rcode_id": 3,
    }

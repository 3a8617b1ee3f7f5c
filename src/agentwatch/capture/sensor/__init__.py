"""The host sensor: processes, network connections and watched files, without kernel privileges.

``agentwatch sensor`` polls ``/proc`` through psutil for ``process.exec`` / ``process.exit`` and
``network.connect``, watches credential and agent-config paths with inotify for
``file.open`` / ``file.write``, marks AI agent processes, and ships OISP events in batches
to ``/api/v1/ingest`` with an on-disk buffer while the server is away.
"""

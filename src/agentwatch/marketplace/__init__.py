"""The marketplace: signed detections, playbooks and plugin notes, listed and installed (``/api/v1/marketplace``)."""

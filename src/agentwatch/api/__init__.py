"""The HTTP and WebSocket surfaces, one router module per surface."""

"""Web Push to responders' browsers (VAPID, RFC 8292; aes128gcm payloads, RFC 8291)."""

"""TLS facts: does the port speak TLS, which version and cipher, and what the certificate says."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes

from agentwatch.discovery.httpio import scanner_ssl_context


async def handshake(host: str, port: int, connect_timeout: float, handshake_timeout: float) -> dict[str, Any] | None:
    """The TLS facts of ``host:port``, or None when it does not complete a TLS handshake.

    The handshake is an exchange of messages, not a connect, so it gets the read budget: a busy server that
    accepts at once but answers its ClientHello late is still recognised as TLS.
    """
    try:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(host, port, ssl=scanner_ssl_context(), ssl_handshake_timeout=handshake_timeout),
            connect_timeout + handshake_timeout,
        )
    except (OSError, TimeoutError, ValueError):
        return None
    try:
        ssl_obj = writer.get_extra_info("ssl_object")
        if ssl_obj is None:
            return None
        der = ssl_obj.getpeercert(binary_form=True)
        cipher = ssl_obj.cipher()
        facts: dict[str, Any] = {
            "protocol": ssl_obj.version(),
            "cipher": cipher[0] if cipher else None,
            "alpn": ssl_obj.selected_alpn_protocol(),
        }
        if der:
            try:
                facts.update(certificate_facts(der))
            except Exception as exc:  # OpenSSL accepted a certificate that cryptography cannot read
                facts.update(sha256=hashlib.sha256(der).hexdigest(), certificate_error=str(exc)[:200])
        return facts
    finally:
        writer.close()
        with contextlib.suppress(OSError, TimeoutError):
            await asyncio.wait_for(writer.wait_closed(), 0.5)


def certificate_facts(der: bytes) -> dict[str, Any]:
    cert = x509.load_der_x509_certificate(der)
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        names = [str(n.value) for n in san][:20]
    except x509.ExtensionNotFound:
        names = []
    return {
        "sha256": hashlib.sha256(der).hexdigest(),
        "subject": cert.subject.rfc4514_string()[:512],
        "issuer": cert.issuer.rfc4514_string()[:512],
        "self_signed": cert.subject == cert.issuer,
        "not_before": cert.not_valid_before_utc.isoformat(),
        "not_after": cert.not_valid_after_utc.isoformat(),
        "serial": format(cert.serial_number, "x")[:64],
        "san": names,
        "signature_hash": cert.signature_hash_algorithm.name if cert.signature_hash_algorithm else None,
        "fingerprint_sha1": cert.fingerprint(hashes.SHA1()).hex(),  # noqa: S303 - an identifier, not a security check
    }

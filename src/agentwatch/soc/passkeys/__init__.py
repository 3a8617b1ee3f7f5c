"""WebAuthn passkeys: register authenticators, sign in with them (AiSOC's ``/api/v1/passkeys``)."""

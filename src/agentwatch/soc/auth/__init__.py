"""Identity and access: users, sessions (JWT + rotating refresh tokens), API keys, roles, limits.

The :class:`~agentwatch.soc.auth.service.AuthService` ties the parts together and is the
authenticator the route guard (``agentwatch.api.security.Guard``) asks for every request.
"""

"""Authentication: passwords (argon2), JWT access tokens, rotating refresh tokens, API keys."""

"""ratelimit_app: database-managed API rate limits for Django, enforced on Redis."""

__version__ = "0.1.0"

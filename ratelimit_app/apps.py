from django.apps import AppConfig


class RatelimitAppConfig(AppConfig):
    name = "ratelimit_app"
    verbose_name = "Rate limits"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        # Registers the checks and the receivers (the audit trail's among them).
        from ratelimit_app import audit, checks, metrics, runtime  # noqa: F401

        # Off by default: then no metrics receiver is connected at all.
        metrics.sync()

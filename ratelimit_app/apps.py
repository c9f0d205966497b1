from django.apps import AppConfig


class RatelimitAppConfig(AppConfig):
    name = "ratelimit_app"
    verbose_name = "Rate limits"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from ratelimit_app import activity, checks, metrics, runtime  # noqa: F401  (registers checks, receivers)

        # Off by default: then no metrics receiver is connected at all.
        metrics.sync()
        # The console's record of recent traffic (batched off the request path).
        activity.connect()

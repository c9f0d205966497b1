"""Prometheus metrics of ratelimit_app (``RATELIMIT_APP["METRICS"] = True``).

prometheus_client is an optional dependency (``pip install ratelimit_app[prometheus]``)
and is imported only when metrics are on. Off (the default), no receiver is connected:
the request path sends no metrics signal and times no counter-store call. Under gunicorn
with several workers, set ``PROMETHEUS_MULTIPROC_DIR`` (prometheus_client's
multiprocess mode) and the view exposes every worker's figures; see the README.
"""

import importlib.util
import logging
from typing import Any

from django.core.signals import setting_changed
from django.dispatch import receiver

from ratelimit_app.conf import WATCHED_SETTINGS, get_config

# The receivers (and through them the pipeline and the models) are imported only when
# metrics are switched: this package is also imported from a gunicorn configuration
# file (metrics.gunicorn), before Django's apps are loaded.
logger = logging.getLogger("ratelimit_app.metrics")


def available() -> bool:
    """Whether prometheus_client is installed."""
    return importlib.util.find_spec("prometheus_client") is not None


def wanted() -> bool:
    """Whether RATELIMIT_APP['METRICS'] asks for metrics."""
    return bool(get_config()["METRICS"])


def sync() -> bool:
    """Connect or disconnect the metrics as the settings say; returns whether they are on.

    Metrics asked for without prometheus_client installed stay off (system check E009
    says so); nothing here raises.
    """
    from ratelimit_app.metrics import receivers

    if wanted() and available():
        receivers.connect()
        return True
    receivers.disconnect()
    return False


@receiver(setting_changed)
def _sync_on_setting_changed(*, setting: str, **kwargs: Any) -> None:
    if setting in WATCHED_SETTINGS:
        try:
            sync()
        except Exception:  # a settings change in a test or a shell: never fatal
            logger.exception("Could not switch ratelimit_app's metrics.")

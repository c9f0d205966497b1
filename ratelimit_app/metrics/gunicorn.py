"""gunicorn hooks for prometheus_client's multiprocess mode.

In the gunicorn configuration file (``gunicorn -c gunicorn.conf.py``)::

    from ratelimit_app.metrics.gunicorn import child_exit  # noqa: F401

so that a worker that exits stops counting in the live-process gauges (breaker state,
policy revision, snapshot age). Counters and histograms of exited workers are kept:
their requests happened.
"""

import logging
from typing import Any

logger = logging.getLogger("ratelimit_app.metrics")


def child_exit(server: Any, worker: Any) -> None:
    """gunicorn's child_exit hook: mark the worker's metric files dead."""
    try:
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)
    except Exception:  # no multiprocess directory, or prometheus_client absent
        logger.debug("Worker %s: metric files not marked dead.", worker.pid, exc_info=True)

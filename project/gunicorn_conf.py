"""gunicorn settings of the demo: ``gunicorn -c python:project.gunicorn_conf project.wsgi``.

With Prometheus metrics on several workers, export PROMETHEUS_MULTIPROC_DIR (an empty
directory of its own, emptied before each start) and keep this hook: it marks an exited
worker's metric files dead so the live-process gauges forget it.
"""

from ratelimit_app.metrics.gunicorn import child_exit  # noqa: F401

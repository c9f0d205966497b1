"""URLs for tests/test_pipeline.py: the demo's, with the token view decorated as well."""

from django.urls import path

from project.demo import views
from project.urls import urlpatterns as demo_urlpatterns
from ratelimit_app.decorators import ratelimit

decorated_token_view = ratelimit(group="token")(views.token_view)

urlpatterns = [
    path("connect/token", decorated_token_view),
    *[p for p in demo_urlpatterns if str(p.pattern) != "connect/token"],
]

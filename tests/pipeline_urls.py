"""URLs for tests/test_pipeline.py: the demo's, with the token view decorated as well."""

from django.urls import path

from project.demo import views
from project.urls import urlpatterns as demo_urlpatterns
from ratelimit_app.decorators import ratelimit

decorated_token_view = ratelimit(group="token")(views.token_view)
# Names a group that does not exist, under the admin group's path pattern.
misnamed_view = ratelimit(group="no-such-group")(views.hello)

urlpatterns = [
    path("connect/token", decorated_token_view),
    path("acp/admin/misnamed", misnamed_view),
    *[p for p in demo_urlpatterns if str(p.pattern) != "connect/token"],
]

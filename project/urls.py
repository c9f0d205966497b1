from django.contrib import admin
from django.urls import include, path

from project.demo import views
from ratelimit_app.metrics.views import metrics_view

urlpatterns = [
    path("admin/", admin.site.urls),
    path("connect/token", views.token_view, name="token"),
    # A third-party provider's token view: django-oauth-toolkit at /o/token/.
    path("o/", include("oauth2_provider.urls", namespace="oauth2_provider")),
    path("v1/status", views.StatusView.as_view(), name="status"),
    path("v1/messages", views.MessagesView.as_view(), name="messages"),
    path("v1/media", views.MediaView.as_view(), name="media"),
    path("v1/licenses/validate", views.LicenseView.as_view(), name="license-validate"),
    path("v1/licenses/activate", views.LicenseView.as_view(), name="license-activate"),
    path("test", views.OtpTestView.as_view(), name="otp-test"),
    path("acp/<slug:group>/ping", views.AcpGroupView.as_view(), name="acp-ping"),
    path("hello", views.hello, name="hello"),
    path("v1/legacy", views.legacy_report, name="legacy"),
    path("v1/async", views.async_report, name="async"),
    # Prometheus metrics (RATELIMIT_METRICS=1): staff, or RATELIMIT_METRICS_TOKEN as a
    # bearer token. In production serve this path to the scraper only (README).
    path("metrics", metrics_view, name="metrics"),
]

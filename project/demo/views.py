"""The demo API: one endpoint per case of the source documents."""

import hmac

from django.conf import settings
from django.http import Http404, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST
from rest_framework.response import Response
from rest_framework.views import APIView

from project.demo.tokens import LIFETIME, issue_token
from ratelimit_app.credentials import client_credentials
from ratelimit_app.decorators import ratelimit

MAX_CLIENT_ID_LENGTH = 255


class GroupView(APIView):
    """A DRF view whose endpoint group names its limits."""

    ratelimit_group = "standard"

    def get(self, request, *args, **kwargs):
        return Response({"ok": True, "group": self.ratelimit_group})

    def post(self, request, *args, **kwargs):
        return Response({"ok": True, "group": self.ratelimit_group}, status=201)


class StatusView(GroupView):
    ratelimit_group = "standard"
    http_method_names = ["get", "head", "options"]


class MessagesView(GroupView):
    ratelimit_group = "messaging"


class MediaView(GroupView):
    ratelimit_group = "media"
    http_method_names = ["post", "options"]


class LicenseView(GroupView):
    ratelimit_group = "license"
    http_method_names = ["post", "options"]


class OtpTestView(GroupView):
    ratelimit_group = "otp"
    http_method_names = ["post", "options"]


ACP_GROUPS = ("admin", "developer", "public", "oauth2", "openbanking", "web", "system")


class AcpGroupView(GroupView):
    """``/acp/<group>/ping``: one endpoint per ACP API group; the URL picks one of
    ACP_GROUPS (in any case, as the path patterns match), never a group of its own."""

    def initial(self, request, *args, **kwargs):
        group = kwargs["group"].lower()
        if group not in ACP_GROUPS:
            raise Http404("No such API group.")
        self.ratelimit_group = group
        super().initial(request, *args, **kwargs)


def _oauth_error(code, description, status=400):
    return JsonResponse({"error": code, "error_description": description}, status=status)


@csrf_exempt
@require_POST
def token_view(request):
    """OAuth2 client-credentials grant: 400 with an OAuth2 error body on bad credentials."""
    pair = client_credentials(request)
    if pair is None:
        return _oauth_error("invalid_request", "Send client_id and client_secret.")
    client_id, client_secret = pair
    if len(client_id) > MAX_CLIENT_ID_LENGTH:
        return _oauth_error("invalid_request", "client_id is too long.")
    expected = settings.DEMO_OAUTH_CLIENTS.get(client_id)
    if expected is None or not hmac.compare_digest(
        expected.encode(), client_secret.encode("utf-8", "surrogatepass")
    ):
        return _oauth_error("invalid_client", "Client authentication failed.")
    return JsonResponse(
        {"access_token": issue_token(client_id), "token_type": "Bearer", "expires_in": LIFETIME}
    )


def hello(request):
    """A plain Django (non-DRF) view; its group comes from the path patterns."""
    return HttpResponse("Hello from a plain Django view.\n", content_type="text/plain")


@ratelimit(group="standard")
def legacy_report(request):
    """A plain view limited by the decorator (and also covered by the middleware)."""
    return JsonResponse({"ok": True, "view": "legacy"})


@ratelimit(group="standard")
async def async_report(request):
    """An async plain view under the decorator."""
    return JsonResponse({"ok": True, "view": "async"})

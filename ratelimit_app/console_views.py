"""The operators' console pages and actions beyond the model forms: resetting a party's
counters, the preview of a request, the index dashboard, the usage page. Hooked into
admin.py."""

import datetime

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import Q
from django.template.response import TemplateResponse
from django.urls import path, reverse

from ratelimit_app import activity, runtime
from ratelimit_app.console import when
from ratelimit_app.counters.base import BackendUnavailable
from ratelimit_app.enforcement.specs import party_of
from ratelimit_app.models import ApiKey, CredentialBan, EndpointGroup, Tenant
from ratelimit_app.preview import preview
from ratelimit_app.reset import StoreUnavailable, reset_party


def _reset_each(modeladmin, request, queryset, party):
    """Reset the counters of every selected row (``party``: reset_party's argument)."""
    done = []
    for row in queryset:
        try:
            done.append(reset_party(**{party: row}, user=request.user))
        except StoreUnavailable as exc:
            modeladmin.message_user(request, str(exc), messages.ERROR)
            break
    if done:
        names = ", ".join(d.shown_as for d in done)
        keys = sum(d.keys for d in done)
        modeladmin.message_user(
            request,
            f"Counters reset for {names} ({keys} counter keys cleared); every worker "
            "admits their next request.",
            messages.SUCCESS,
        )


@admin.action(description="Reset the counters of the selected tenants", permissions=["change"])
def reset_tenant_counters(modeladmin, request, queryset):
    """Admin action: reset each selected tenant's counters (its API keys' too)."""
    _reset_each(modeladmin, request, queryset, "tenant")


@admin.action(description="Reset the counters of the selected API keys", permissions=["change"])
def reset_api_key_counters(modeladmin, request, queryset):
    """Admin action: reset each selected API key's counters."""
    _reset_each(modeladmin, request, queryset, "api_key")


class PreviewForm(forms.Form):
    """Who asks (a tenant, or an API key prefix) and where (a path, or a group)."""

    tenant = forms.ModelChoiceField(Tenant.objects.all(), required=False)
    api_key = forms.CharField(
        label="or an API key prefix", required=False, max_length=16, help_text="8 hex digits"
    )
    path = forms.CharField(required=False, max_length=500, help_text="For example /v1/status")
    group = forms.ChoiceField(label="or an endpoint group", required=False)
    ip = forms.CharField(label="client address (optional)", required=False, max_length=64)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        slugs = EndpointGroup.objects.order_by("slug").values_list("slug", flat=True)
        self.fields["group"].choices = [("", "(the path's)"), *((s, s) for s in slugs)]

    def clean(self):
        data = super().clean()
        if data.get("tenant") and data.get("api_key"):
            raise forms.ValidationError("Choose a tenant or give an API key prefix, not both.")
        if not data.get("path") and not data.get("group"):
            raise forms.ValidationError("Give a path or choose an endpoint group.")
        return data


def preview_view(model_admin):
    """The preview page's view, under ``model_admin`` (the Tenant admin): staff with the
    permission to view tenants."""

    def view(request):
        if not model_admin.has_view_permission(request):
            raise PermissionDenied
        form = PreviewForm(request.GET or None)
        shown = None
        if form.is_valid():
            data = form.cleaned_data
            shown = preview(
                tenant_id=data["tenant"].pk if data["tenant"] else None,
                api_key_prefix=data["api_key"],
                path=data["path"],
                group=data["group"],
                ip=data["ip"],
            )
        context = {
            **model_admin.admin_site.each_context(request),
            "title": "Preview a request",
            "form": form,
            "preview": shown,
            "opts": model_admin.model._meta,
        }
        return TemplateResponse(request, "ratelimit_app/admin/preview.html", context)

    return view


def tenant_urls(model_admin):
    """The console's pages under the Tenant admin's URLs (hooked in its get_urls)."""
    wrap = model_admin.admin_site.admin_view
    return [
        path("preview/", wrap(preview_view(model_admin)), name="ratelimit_app_preview"),
        path("usage/", wrap(usage_view(model_admin)), name="ratelimit_app_usage"),
    ]


DASHBOARD_MINUTES = 5


def dashboard(request):
    """What the admin index shows above the models: active bans, clients throttled and
    shadow-limit hits in the last DASHBOARD_MINUTES, and the counter store's health."""
    if not request.user.has_module_perms("ratelimit_app"):
        return {"shown": False}
    shown = {
        "shown": True,
        "minutes": DASHBOARD_MINUTES,
        "active_bans": CredentialBan.objects.active().count(),
        "bans_url": reverse("admin:ratelimit_app_credentialban_changelist") + "?status=active",
        "preview_url": reverse("admin:ratelimit_app_preview"),
        "usage_url": reverse("admin:ratelimit_app_usage"),
        "breaker": breaker_state(),
    }
    try:
        recent = activity.recent(DASHBOARD_MINUTES)
    except BackendUnavailable as exc:
        shown["store"] = f"not answering ({exc.kind})"
        return shown
    shown["store"] = "answering"
    if recent is not None:
        per_group = sorted(((g, len(p)) for g, p in recent.throttled.items()), key=_busiest)
        shown["throttled"] = sum(count for _group, count in per_group)
        shown["throttled_groups"] = per_group[:10]
        shadow = sorted(
            ((f"{g} · {limit}", n) for (g, limit), n in recent.shadow.items()), key=_busiest
        )
        shown["shadow_hits"] = sum(count for _name, count in shadow)
        shown["shadow_limits"] = shadow[:10]
    return shown


def _busiest(item):
    return (-item[1], item[0])


def breaker_state():
    """This process's circuit breaker(s) in words: closed, or open (and for how long)."""
    guarded = runtime.get_backend()
    shards = getattr(guarded.backend, "_breakers", None)
    if shards is not None:  # a cluster: a breaker per shard
        opened = sorted(name for name, breaker in shards.items() if breaker.is_open)
        return f"open for {len(opened)} shard(s)" if opened else "closed (every shard)"
    return "open: requests skip the store" if guarded.breaker.is_open else "closed"


USAGE_MINUTES = (1, 5, 15)
TOP = 10
# Parties named on the usage page: at most this many tenants and API keys are hashed.
MAX_NAMED = 10_000
MAX_KEYS_LISTED = 200


def party_names():
    """The parties the console can name, by hash tag: tenants and API keys."""
    names = {}
    for pk, slug in Tenant.objects.values_list("pk", "slug")[:MAX_NAMED]:
        names[party_of("tenant", pk)] = f"tenant {slug}"
    keys = ApiKey.objects.values_list("pk", "prefix", "tenant__slug")[:MAX_NAMED]
    for pk, prefix, tenant in keys:
        names[party_of("api_key", pk)] = f"API key {prefix} ({tenant})"
    return names


def _named(party, names):
    return names.get(party) or f"other party {activity.shown_party(party)}"


def usage_data(minutes):
    """The usage page's tables for the last ``minutes``; raises BackendUnavailable."""
    recent = activity.recent(minutes)
    if recent is None:
        return None
    names = party_names()
    groups = sorted(set(recent.throttled) | set(recent.used))
    per_group = []
    for group in groups:
        throttled = sorted(recent.throttled.get(group, {}).items(), key=lambda item: -item[1])
        used = sorted(recent.used.get(group, {}).items(), key=lambda item: (-item[1], item[0]))
        per_group.append(
            {
                "group": group,
                "throttled_count": len(throttled),
                "throttled": [(_named(p, names), when_epoch(at)) for p, at in throttled[:TOP]],
                "top": [(_named(p, names), count) for p, count in used[:TOP]],
            }
        )
    shadow = sorted(recent.shadow.items(), key=lambda item: (-item[1], item[0]))
    return {"groups": per_group, "shadow": [(g, limit, n) for (g, limit), n in shadow]}


def keys_last_used(query=""):
    """API keys (at most MAX_KEYS_LISTED, matching ``query``) with their last use."""
    keys = ApiKey.objects.select_related("tenant").order_by("prefix")
    if query:
        keys = keys.filter(Q(prefix__startswith=query.lower()) | Q(name__icontains=query))
    keys = list(keys[:MAX_KEYS_LISTED])
    parties = [party_of("api_key", key.pk) for key in keys]
    seen = activity.last_seen(parties)
    return [(key, when_epoch(seen.get(party))) for key, party in zip(keys, parties, strict=True)]


def when_epoch(at):
    """An epoch time in the console's words, or "not in the last 30 days"."""
    if at is None:
        return "not in the last 30 days"
    moment = datetime.datetime.fromtimestamp(at, tz=datetime.UTC)
    return when(moment, now=datetime.datetime.fromtimestamp(runtime.wall_clock(), tz=datetime.UTC))


def usage_view(model_admin):
    """The usage page's view (staff who may view tenants)."""

    def view(request):
        if not model_admin.has_view_permission(request):
            raise PermissionDenied
        try:
            minutes = int(request.GET.get("minutes", 5))
        except ValueError:
            minutes = 5
        minutes = minutes if minutes in USAGE_MINUTES else 5
        query = request.GET.get("q", "").strip()[:64]
        context = {
            **model_admin.admin_site.each_context(request),
            "title": "Who is using it",
            "minutes": minutes,
            "choices": USAGE_MINUTES,
            "query": query,
            "opts": model_admin.model._meta,
        }
        try:
            context["usage"] = usage_data(minutes)
            context["keys"] = keys_last_used(query)
        except BackendUnavailable as exc:
            context["error"] = f"The counter store did not answer ({exc.kind}): no figures now."
        return TemplateResponse(request, "ratelimit_app/admin/usage.html", context)

    return view

"""The operators' console pages and actions beyond the model forms: resetting a party's
counters, the preview of a request. Hooked into admin.py."""

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.template.response import TemplateResponse
from django.urls import path

from ratelimit_app.models import EndpointGroup, Tenant
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
    return [path("preview/", wrap(preview_view(model_admin)), name="ratelimit_app_preview")]

"""The operators' console pages and actions beyond the model forms: resetting a party's
counters (more to come: the preview, the usage page). Hooked into admin.py."""

from django.contrib import admin, messages

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

"""The operators' admin: tiers with their limits, tenants with overrides and keys, bans."""

from django.contrib import admin, messages
from django.db.models import Count
from django.template.response import TemplateResponse
from django.utils import timezone
from django.utils.html import format_html

from ratelimit_app import hashing
from ratelimit_app.audit_console import AuditedAdmin, PolicyEditAdmin
from ratelimit_app.bans import rows as ban_rows
from ratelimit_app.console import (
    LimitFields,
    LimitInlineFormSet,
    effective_limits_table,
    when,
)
from ratelimit_app.guard_rails import ConfirmLooseningEdits
from ratelimit_app.models import (
    ApiKey,
    BanRule,
    CredentialBan,
    EndpointGroup,
    Limit,
    PolicyEdit,
    Tenant,
    Tier,
)
from ratelimit_app.named_groups import named_groups

LIMIT_FIELDS = ("group", "scope", "algorithm", "rate", "period", "burst", "enabled", "shadow")
# Fields derived from secrets: no lookup may filter on them (a filter such as
# ?hashed_secret__startswith=0 would read them character by character).
SECRET_DERIVED_FIELDS = frozenset({"hashed_secret", "fingerprint"})
ISSUED_ATTRIBUTE = "_ratelimit_issued_keys"


class SecretLookupsRefused:
    """Refuses, for every user, changelist lookups on secret-derived fields (400)."""

    def lookup_allowed(self, lookup, value, request=None):
        if SECRET_DERIVED_FIELDS & set(lookup.split("__")):
            return False
        return super().lookup_allowed(lookup, value, request)


class TierLimitInline(LimitFields, admin.TabularInline):
    model = Limit
    formset = LimitInlineFormSet
    fk_name = "tier"
    fields = LIMIT_FIELDS
    extra = 0
    verbose_name_plural = "limits"


class TenantOverrideInline(LimitFields, admin.TabularInline):
    model = Limit
    formset = LimitInlineFormSet
    fk_name = "tenant"
    fields = LIMIT_FIELDS
    extra = 0
    verbose_name = "override"
    verbose_name_plural = "overrides (replace the tier's limit with the same group, scope, period)"


class ApiKeyInline(admin.TabularInline):
    model = ApiKey
    fields = ("name", "prefix", "created_at", "revoked")
    readonly_fields = ("prefix", "created_at")
    extra = 0


def _issue_key(request, key):
    """Give a new ApiKey its secret, to be shown once in the response page itself (never
    in a message, which travels in a cookie or the session)."""
    prefix, secret = hashing.new_api_key()
    key.prefix = prefix
    key.hashed_secret = hashing.hash_api_key(secret)
    key.save()
    issued = getattr(request, ISSUED_ATTRIBUTE, [])
    issued.append((key, secret))
    setattr(request, ISSUED_ATTRIBUTE, issued)


def _issued_page(request, response):
    """The page that shows the secrets issued by this request once, or ``response``."""
    issued = getattr(request, ISSUED_ATTRIBUTE, None)
    if not issued:
        return response
    continue_url = response.get("Location", "../")
    page = TemplateResponse(
        request,
        "ratelimit_app/admin/api_key_issued.html",
        {
            **admin.site.each_context(request),
            "issued": issued,
            "continue_url": continue_url,
            "title": "New API key",
        },
    )
    page["Cache-Control"] = "no-store"
    return page


@admin.register(Tier)
class TierAdmin(AuditedAdmin, ConfirmLooseningEdits, SecretLookupsRefused, admin.ModelAdmin):
    list_display = ("name", "is_default", "tenant_count", "description")
    readonly_fields = ("effective_limits",)
    inlines = [TierLimitInline]

    @admin.display(description="limits that apply, per group")
    def effective_limits(self, obj):
        return effective_limits_table(tier=obj) if obj.pk else "Save the tier first."

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(_tenants=Count("tenants"))

    @admin.display(description="tenants", ordering="_tenants")
    def tenant_count(self, obj):
        return obj._tenants


@admin.register(Tenant)
class TenantAdmin(AuditedAdmin, ConfirmLooseningEdits, SecretLookupsRefused, admin.ModelAdmin):
    list_display = ("name", "slug", "tier", "active", "created_at")
    list_filter = ("tier", "active")
    search_fields = ("name", "slug")
    prepopulated_fields = {"slug": ("name",)}
    readonly_fields = ("effective_limits",)
    inlines = [TenantOverrideInline, ApiKeyInline]

    @admin.display(description="limits that apply, per group")
    def effective_limits(self, obj):
        # As requests see them: the tier's, each override replacing its scope and period.
        return effective_limits_table(tenant=obj) if obj.pk else "Save the tenant first."

    def response_add(self, request, obj, post_url_continue=None):
        return _issued_page(request, super().response_add(request, obj, post_url_continue))

    def response_change(self, request, obj):
        return _issued_page(request, super().response_change(request, obj))

    def save_formset(self, request, form, formset, change):
        if formset.model is not ApiKey:
            return super().save_formset(request, form, formset, change)
        for key in formset.save(commit=False):
            if key.pk is None:
                _issue_key(request, key)
            else:
                key.save()
        for key in formset.deleted_objects:
            key.delete()


@admin.register(EndpointGroup)
class EndpointGroupAdmin(
    AuditedAdmin, ConfirmLooseningEdits, SecretLookupsRefused, admin.ModelAdmin
):
    list_display = ("slug", "name", "applies_to_all", "patterns")
    search_fields = ("slug", "name", "path_patterns")

    def get_readonly_fields(self, request, obj=None):
        # Views name groups by slug: renaming one in use would silently move its views
        # to their path patterns' group (and its limits with them).
        fields = tuple(super().get_readonly_fields(request, obj))
        if obj is not None and self.slug_in_use(obj):
            return (*fields, "slug")
        return fields

    @staticmethod
    def slug_in_use(obj):
        """Why the group's slug cannot change (views or limits use it), or ''."""
        routes = sorted(r for r, group in named_groups().items() if group == obj.slug)
        reasons = []
        if routes:
            reasons.append(
                f"views name it ({', '.join(routes[:3])}{', ...' if routes[3:] else ''})"
            )
        if obj.limits.exists():
            reasons.append("limits count under it")
        return " and ".join(reasons)

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        reason = self.slug_in_use(obj) if obj is not None else ""
        if reason:
            context["subtitle"] = (
                f"{obj} — the slug cannot be changed here: {reason}. Create a new group instead."
            )
        return super().render_change_form(request, context, add, change, form_url, obj)

    @admin.display(description="path patterns")
    def patterns(self, obj):
        return ", ".join(obj.pattern_list())


@admin.register(Limit)
class LimitAdmin(
    AuditedAdmin, ConfirmLooseningEdits, LimitFields, SecretLookupsRefused, admin.ModelAdmin
):
    # Fits 1,400 px: the owner, the group, and the limit as an operator says it.
    list_display = ("owner", "group", "in_words", "enabled", "shadow")
    list_filter = (
        "tier",
        ("tenant", admin.RelatedOnlyFieldListFilter),  # tenants with overrides only
        "group",
        "scope",
        "algorithm",
        "enabled",
        "shadow",
    )
    list_select_related = ("group", "tier", "tenant")
    search_fields = ("group__slug", "tenant__name", "tier__name", "description")

    @admin.display(description="owner")
    def owner(self, obj):
        return f"tenant {obj.tenant}" if obj.tenant_id else f"tier {obj.tier}"

    @admin.display(description="limit")
    def in_words(self, obj):
        return obj.in_words()


@admin.register(ApiKey)
class ApiKeyAdmin(AuditedAdmin, ConfirmLooseningEdits, SecretLookupsRefused, admin.ModelAdmin):
    list_display = ("name", "prefix", "tenant", "created_at", "status")
    list_filter = ("revoked", "tenant")
    search_fields = ("name", "prefix", "tenant__name")
    fields = ("tenant", "name", "prefix", "created_at", "revoked")
    readonly_fields = ("prefix", "created_at")
    actions = ["revoke_selected"]

    @admin.display(description="status", ordering="revoked")
    def status(self, obj):
        # Words, not a green check: a check mark next to "revoked" read as "fine".
        return "Revoked" if obj.revoked else "Active"

    def save_model(self, request, obj, form, change):
        if change:
            return super().save_model(request, obj, form, change)
        _issue_key(request, obj)

    def response_add(self, request, obj, post_url_continue=None):
        return _issued_page(request, super().response_add(request, obj, post_url_continue))

    @admin.action(description="Revoke selected API keys")
    def revoke_selected(self, request, queryset):
        for key in queryset.filter(revoked=False):
            key.revoked = True
            key.save(update_fields=["revoked"])
            self.log_change(request, key, "Revoked")
        self.message_user(request, "Revoked.", messages.SUCCESS)


@admin.register(BanRule)
class BanRuleAdmin(AuditedAdmin, SecretLookupsRefused, admin.ModelAdmin):
    list_display = (
        "name",
        "group",
        "path",
        "methods",
        "counted_by",
        "failure_statuses",
        "threshold",
        "window",
        "cooldown",
        "enabled",
    )
    list_filter = ("enabled", "counted_by")


class BanStatusFilter(admin.SimpleListFilter):
    title = "status"
    parameter_name = "status"

    def lookups(self, request, model_admin):
        return [("active", "active"), ("expired", "expired"), ("lifted", "lifted")]

    def queryset(self, request, queryset):
        now = timezone.now()
        if self.value() == "active":
            return queryset.active(now)
        if self.value() == "expired":
            return queryset.filter(lifted_at__isnull=True, expires_at__lte=now)
        if self.value() == "lifted":
            return queryset.filter(lifted_at__isnull=False)
        return queryset


@admin.register(CredentialBan)
class CredentialBanAdmin(AuditedAdmin, SecretLookupsRefused, admin.ModelAdmin):
    list_display = (
        "client_id",
        "kind",
        "short_fingerprint",
        "failures",
        "banned",
        "expires",
        "status",
        "lifted_at",
        "lifted_by",
    )
    list_filter = (BanStatusFilter, "kind", "rule")
    search_fields = ("client_id",)
    fields = (
        "client_id",
        "kind",
        "short_fingerprint",
        "rule",
        "failures",
        "banned_at",
        "expires_at",
        "lifted_at",
        "lifted_by",
    )
    readonly_fields = fields
    actions = ["unban_selected"]
    list_select_related = ("rule", "lifted_by")

    @admin.display(description="banned at", ordering="banned_at")
    def banned(self, obj):
        return when(obj.banned_at)

    @admin.display(description="expires", ordering="expires_at")
    def expires(self, obj):
        return when(obj.expires_at)

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_lift_permission(self, request):
        """The dedicated permission the unban action needs."""
        return request.user.has_perm("ratelimit_app.lift_credentialban")

    def has_delete_permission(self, request, obj=None):
        # Deleting lifts an active ban first: it needs the lift permission as well.
        return super().has_delete_permission(request, obj) and self.has_lift_permission(request)

    def delete_model(self, request, obj):
        self.delete_queryset(request, CredentialBan.objects.filter(pk=obj.pk))

    def delete_queryset(self, request, queryset):
        """Lift the active bans among ``queryset`` (clearing them in the counter store),
        then delete the rows: a deleted ban can no longer deny."""
        for ban in ban_rows.lift_bans(queryset, user=request.user):
            self.log_change(request, ban, "Unbanned before deletion")
        super().delete_queryset(request, queryset)

    @admin.display(description="fingerprint")
    def short_fingerprint(self, obj):
        return obj.short_fingerprint

    @admin.display(description="status")
    def status(self, obj):
        if obj.lifted_at:
            return "lifted"
        if obj.is_active():
            return format_html("<strong>{}</strong>", "active")
        return "expired"

    @admin.action(description="Unban selected credential pairs", permissions=["lift"])
    def unban_selected(self, request, queryset):
        lifted = ban_rows.lift_bans(queryset, user=request.user)
        for ban in lifted:
            self.log_change(request, ban, "Unbanned")
        self.message_user(request, f"Lifted {len(lifted)} ban(s).", messages.SUCCESS)


admin.site.register(PolicyEdit, PolicyEditAdmin)

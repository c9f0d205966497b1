"""Guard rails: an admin edit that loosens the policy waits for a confirmation page that
says what it will change ("free tier, Admin: 300/min → 3000/min for 41 tenants").

The edit is made as the admin makes it, inside a transaction; the audit trail's records
of it say what changed; if any of those is risky (a limit loosened, disabled or deleted,
a tenant's tier or active flag changed, an API key revoked or deleted) and the operator
has not confirmed, the transaction is rolled back and the confirmation page re-posts the
same form with the confirmation added.
"""

from django.contrib import admin
from django.contrib.messages.storage import default_storage
from django.db import transaction
from django.template.response import TemplateResponse

from ratelimit_app import audit
from ratelimit_app.models import ApiKey, EditAction, EndpointGroup, Limit, Tenant, Tier

CONFIRM_FIELD = "_ratelimit_confirmed"


class Unconfirmed(Exception):
    """Rolls the unconfirmed edit back, carrying what it would have changed."""

    def __init__(self, risks):
        super().__init__("unconfirmed")
        self.risks = risks


class ConfirmLooseningEdits:
    """A ModelAdmin whose risky edits (saves, deletions, actions) ask for confirmation."""

    def changeform_view(self, request, *args, **kwargs):
        return self._guarded(request, super().changeform_view, args, kwargs)

    def changelist_view(self, request, *args, **kwargs):
        return self._guarded(request, super().changelist_view, args, kwargs)

    def delete_view(self, request, *args, **kwargs):
        return self._guarded(request, super().delete_view, args, kwargs)

    def _guarded(self, request, view, args, kwargs):
        if request.method != "POST" or request.POST.get(CONFIRM_FIELD):
            return view(request, *args, **kwargs)
        try:
            with transaction.atomic(), audit.collecting() as edits:
                response = view(request, *args, **kwargs)
                risks = [line for edit in edits for line in risk_lines(edit)]
                if risks:
                    raise Unconfirmed(risks)
        except Unconfirmed as stop:
            # Nothing was saved: a fresh message store drops the "changed successfully"
            # the view queued (and keeps the messages of earlier requests).
            request._messages = default_storage(request)
            return confirmation_page(request, stop.risks)
        return response


def confirmation_page(request, risks):
    """The page listing ``risks``, with the same POST (and the confirmation) to send."""
    fields = [
        (name, value)
        for name, values in request.POST.lists()
        if name != "csrfmiddlewaretoken"
        for value in values
    ]
    return TemplateResponse(
        request,
        "ratelimit_app/admin/confirm_edit.html",
        {
            **admin.site.each_context(request),
            "title": "Confirm this change",
            "risks": risks,
            "fields": fields,
            "confirm_field": CONFIRM_FIELD,
            "back_url": request.get_full_path(),
        },
    )


def risk_lines(edit):
    """What a recorded edit changes that needs confirming, in words (none if it is safe)."""
    if edit.object_type == "limit":
        return _limit_risks(edit)
    if edit.object_type == "tenant" and edit.action == EditAction.CHANGED:
        return _tenant_risks(edit)
    if edit.object_type == "apikey":
        return _key_risks(edit)
    return []


def _limit_from(values, base=None):
    limit = Limit() if base is None else Limit(pk=base.pk)
    if base is not None:
        for field in Limit._meta.concrete_fields:
            setattr(limit, field.attname, getattr(base, field.attname))
    audit._assign(limit, values)
    return limit


def _limit_risks(edit):
    if edit.action == EditAction.DELETED:
        old = _limit_from(edit.old or {})
        return [f"{_owner_and_group(old)}: {old.in_words()} → deleted {_reach(old)}"]
    if edit.action != EditAction.CHANGED:
        return []
    new = Limit.objects.filter(pk=edit.object_id).first()
    if new is None:
        return []
    old = _limit_from(edit.old or {}, base=new)
    how = _loosened(old, new)
    if not how:
        return []
    after = "disabled" if how == "disabled" else new.in_words()
    if how == "shadow":
        after += " (shadow: never denies)"
    return [f"{_owner_and_group(new)}: {old.in_words()} → {after} {_reach(new)}"]


def _loosened(old, new):
    """How ``new`` lets more through than ``old``: "disabled", "shadow", "rate", or ''."""
    if old.enabled and not new.enabled:
        return "disabled"
    if not new.enabled:
        return ""
    if new.shadow and not old.shadow:
        return "shadow"
    if new.rate * old.period > old.rate * new.period:  # requests per second up
        return "rate"
    if new.algorithm == "gcra" and new.effective_burst > old.effective_burst:
        return "rate"
    if new.algorithm != old.algorithm or new.scope != old.scope:
        return "rate"  # counted differently: not comparable, so confirmed
    return ""


def _owner_and_group(limit):
    group = EndpointGroup.objects.filter(pk=limit.group_id).first()
    group_name = group.name if group else "?"
    if limit.tenant_id:
        tenant = Tenant.objects.filter(pk=limit.tenant_id).first()
        return f"tenant {tenant}, {group_name}"
    tier = Tier.objects.filter(pk=limit.tier_id).first()
    return f"{tier} tier, {group_name}"


def _reach(limit):
    """Whom the limit applies to: the tier's tenants without their own override of it."""
    if limit.tenant_id:
        return "for this tenant"
    overridden = Limit.objects.filter(
        tenant__isnull=False,
        enabled=True,
        group_id=limit.group_id,
        scope=limit.scope,
        period=limit.period,
    ).values("tenant_id")
    count = Tenant.objects.filter(tier_id=limit.tier_id).exclude(pk__in=overridden).count()
    reach = f"for {count:,} tenant{'s' if count != 1 else ''}"
    if Tier.objects.filter(pk=limit.tier_id, is_default=True).exists():
        reach += " and every request with no tenant"
    return reach


def _tenant_risks(edit):
    old, new = edit.old or {}, edit.new or {}
    tenant = Tenant.objects.filter(pk=edit.object_id).first()
    lines = []
    if "tier_id" in new:
        before = Tier.objects.filter(pk=old.get("tier_id")).first()
        after = Tier.objects.filter(pk=new["tier_id"]).first()
        lines.append(f"tenant {tenant}: tier {before} → {after}; {_tier_difference(before, after)}")
    if "active" in new:
        keys = ApiKey.objects.filter(tenant_id=edit.object_id, revoked=False).count()
        if new["active"]:
            lines.append(f"tenant {tenant}: active again; its {keys} API key(s) count as it")
        else:
            lines.append(
                f"tenant {tenant}: inactive; requests with its {keys} API key(s) are refused "
                "(403) until it is active again"
            )
    return lines


def _tier_difference(before, after):
    """The per-group limits that change between two tiers, in words."""

    def table(tier):
        limits = Limit.objects.filter(tier=tier, enabled=True).select_related("group")
        return {(x.group.name, x.scope, x.period): x.in_words() for x in limits}

    old, new = table(before), table(after)
    changes = [
        f"{group}: {old.get(k, 'none')} → {new.get(k, 'none')}"
        for k in sorted(set(old) | set(new))
        if old.get(k) != new.get(k)
        for group in [k[0]]
    ]
    if not changes:
        return "the same limits"
    shown = "; ".join(changes[:6])
    return f"{shown}{f'; and {len(changes) - 6} more' if len(changes) > 6 else ''}"


def _key_risks(edit):
    new = edit.new or {}
    if edit.action == EditAction.DELETED or (
        edit.action == EditAction.CHANGED and new.get("revoked") is True
    ):
        verb = "deleted" if edit.action == EditAction.DELETED else "revoked"
        return [
            f"API key {edit.object_repr}: {verb}; requests with it no longer count as its "
            "tenant (they count as anonymous: the default tier's limits)"
        ]
    return []

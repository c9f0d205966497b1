"""What the operators' console shows beside the model forms: limits and times in words,
the period presets, the limits table's own validation, and the effective limits of a
tenant or tier (read from this process's policy snapshot, as requests see them)."""

from django import forms
from django.core.exceptions import ValidationError
from django.forms.models import BaseInlineFormSet
from django.utils import timezone
from django.utils.html import format_html, format_html_join

from ratelimit_app import runtime
from ratelimit_app.models import Limit

PERIOD_PRESETS = ((1, "a second"), (60, "a minute"), (3600, "an hour"), (86400, "a day"))


class PeriodInput(forms.NumberInput):
    """Seconds, with the usual periods offered beside free input (an HTML datalist)."""

    def render(self, name, value, attrs=None, renderer=None):
        list_id = f"{(attrs or {}).get('id') or name}-presets"
        attrs = {**(attrs or {}), "list": list_id, "min": 1}
        options = format_html_join("", '<option value="{}" label="{}"></option>', PERIOD_PRESETS)
        datalist = format_html('<datalist id="{}">{}</datalist>', list_id, options)
        return format_html("{}{}", super().render(name, value, attrs, renderer), datalist)


class LimitFields:
    """Limit forms (the Limit page and the Tier and Tenant tables): period presets."""

    def formfield_for_dbfield(self, db_field, request, **kwargs):
        if db_field.name == "period":
            kwargs["widget"] = PeriodInput()
            kwargs["help_text"] = "Seconds: 1, 60 (a minute), 3600 (an hour), 86400 (a day)."
        return super().formfield_for_dbfield(db_field, request, **kwargs)


def when(moment, now=None):
    """A time with its zone and how far it is: "2026-11-23 13:20 UTC (in 4 min)"."""
    if moment is None:
        return "-"
    now = now or timezone.now()
    shown = timezone.localtime(moment)
    seconds = round((moment - now).total_seconds())
    distance = _distance(abs(seconds))
    relative = "now" if not distance else (f"in {distance}" if seconds > 0 else f"{distance} ago")
    return f"{shown:%Y-%m-%d %H:%M} {shown.tzname()} ({relative})"


def _distance(seconds):
    for unit, word in ((86400, "day"), (3600, "h"), (60, "min"), (1, "s")):
        if seconds >= unit:
            count = seconds // unit
            return f"{count} {word}{'s' if word == 'day' and count > 1 else ''}"
    return ""


class LimitInlineFormSet(BaseInlineFormSet):
    """A tier's limits or a tenant's overrides: two enabled rows with the same group,
    scope and period are a form error naming both, never a database error (a 500)."""

    def clean(self):
        super().clean()
        seen = {}
        for form in self.forms:
            data = getattr(form, "cleaned_data", None)
            if not data or data.get("DELETE") or not data.get("enabled"):
                continue
            identity = (data.get("group"), data.get("scope"), data.get("period"))
            if identity in seen:
                group, scope, period = identity
                raise ValidationError(
                    f"Two enabled limits for the group {getattr(group, 'slug', group)!r}, "
                    f"counted per {scope} over the same period ({period} s): rows "
                    f"{seen[identity] + 1} and {self.forms.index(form) + 1}. Keep one, or "
                    "untick 'enabled' on the other."
                )
            seen[identity] = self.forms.index(form)


def effective_limits_table(tenant=None, tier=None):
    """An HTML table of the limits that apply per group to ``tenant`` (or to a tenant of
    ``tier`` without overrides), each with its source: the tier, or the override."""
    snapshot = runtime.get_snapshot()
    entry = snapshot.tenants.get(tenant.pk) if tenant is not None else None
    tier_id = tenant.tier_id if tenant is not None else tier.pk
    rows = []
    for group in sorted(snapshot.groups):
        overrides = snapshot.overrides(group, entry.id) if entry else ()
        base = snapshot.tier_limits.get((group, tier_id), ())
        replaced = {(o.scope, o.period) for o in overrides}
        applied = [(o, "override") for o in overrides]
        applied += [(b, "tier") for b in base if (b.scope, b.period) not in replaced]
        for limit, source in applied:
            rows.append((group, entry_in_words(limit), source))
    if not rows:
        return "No limit applies."
    body = format_html_join("", "<tr><td>{}</td><td>{}</td><td>{}</td></tr>", rows)
    return format_html(
        '<table class="ratelimit-effective"><thead><tr><th>group</th><th>limit</th>'
        "<th>from</th></tr></thead><tbody>{}</tbody></table>",
        body,
    )


def entry_in_words(limit):
    """A snapshot LimitEntry in the words of Limit.in_words."""
    row = Limit(
        rate=limit.rate,
        period=limit.period,
        burst=limit.burst,
        algorithm=limit.algorithm,
        scope=limit.scope,
    )
    return row.in_words()

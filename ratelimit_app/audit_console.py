"""The audit trail in the admin: the list of policy edits an operator filters (by kind,
user, date), each edit's old and new values, and the revert (an action, and a button on
the edit's page); and the mixin that names the admin's user on the edits it makes."""

import json

from django.contrib import admin, messages
from django.http import HttpResponseNotAllowed, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join

from ratelimit_app import audit
from ratelimit_app.console import when
from ratelimit_app.models import PolicyEdit


class AuditedAdmin:
    """A ModelAdmin whose saves, deletions and actions are recorded as its user's."""

    def changeform_view(self, request, *args, **kwargs):
        with audit.acting_as(request.user):
            return super().changeform_view(request, *args, **kwargs)

    def changelist_view(self, request, *args, **kwargs):
        with audit.acting_as(request.user):
            return super().changelist_view(request, *args, **kwargs)

    def delete_view(self, request, *args, **kwargs):
        with audit.acting_as(request.user):
            return super().delete_view(request, *args, **kwargs)


def shown(value):
    """A stored value as an operator reads it: JSON, empty for None."""
    return "—" if value is None else json.dumps(value, ensure_ascii=False)


def changes_table(edit):
    """field | before | after, one row per field the edit recorded."""
    old, new = edit.old or {}, edit.new or {}
    fields = sorted(set(old) | set(new))
    if not fields:
        return edit.summary or "-"
    rows = format_html_join(
        "",
        "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
        ((f, shown(old.get(f)), shown(new.get(f))) for f in fields),
    )
    return format_html(
        '<table class="ratelimit-audit-changes"><thead><tr><th>field</th><th>before</th>'
        "<th>after</th></tr></thead><tbody>{}</tbody></table>",
        rows,
    )


def changes_in_a_line(edit):
    """The list's column: "burst: 20 → 50" for a change, a count for a whole row."""
    old, new = edit.old or {}, edit.new or {}
    if edit.action in ("created", "deleted"):
        return f"{len(old or new)} fields (open the edit to see them)"
    fields = sorted(set(old) | set(new))
    if not fields:
        return edit.summary or "-"
    return "; ".join(f"{f}: {shown(old.get(f))} → {shown(new.get(f))}" for f in fields)


class PolicyEditAdmin(admin.ModelAdmin):
    list_display = ("when", "who", "what", "object_type", "object_repr", "in_short", "revision")
    list_filter = (
        "object_type",
        "action",
        ("user", admin.RelatedOnlyFieldListFilter),
        ("at", admin.DateFieldListFilter),
    )
    search_fields = ("object_repr", "summary")
    list_select_related = ("user", "reverts")
    fields = ("when", "who", "what", "object_type", "object_id", "object_repr", "revision")
    readonly_fields = (*fields, "changes")
    actions = ["revert_selected"]
    change_form_template = "ratelimit_app/admin/policy_edit.html"

    def get_fields(self, request, obj=None):
        return (*self.fields, "changes")

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False  # the trail is read, never edited

    def has_delete_permission(self, request, obj=None):
        return False

    def has_revert_permission(self, request):
        """The permission the revert needs: ratelimit_app.revert_policyedit."""
        return request.user.has_perm("ratelimit_app.revert_policyedit")

    @admin.display(description="when", ordering="at")
    def when(self, obj):
        return when(obj.at)

    @admin.display(description="who", ordering="user__username")
    def who(self, obj):
        return obj.user.get_username() if obj.user else "(no user: shell or code)"

    @admin.display(description="edit", ordering="action")
    def what(self, obj):
        if obj.reverts_id:
            return f"{obj.get_action_display()} (revert of #{obj.reverts_id})"
        return obj.get_action_display()

    @admin.display(description="before → after")
    def changes(self, obj):
        return changes_table(obj)

    @admin.display(description="before → after")
    def in_short(self, obj):
        return changes_in_a_line(obj)

    def get_urls(self):
        revert_view = self.admin_site.admin_view(self.revert_view)
        return [
            path("<int:edit_id>/revert/", revert_view, name="ratelimit_app_policyedit_revert"),
            *super().get_urls(),
        ]

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        context["can_revert"] = obj is not None and self.has_revert_permission(request)
        return super().render_change_form(request, context, add, change, form_url, obj)

    def revert_view(self, request, edit_id):
        """POST: revert one edit (the button on its page), then show the edit that did."""
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        if not self.has_revert_permission(request):
            return HttpResponseRedirect(reverse("admin:index"))
        edit = get_object_or_404(PolicyEdit, pk=edit_id)
        done = self._revert(request, edit)
        target = done or edit
        return HttpResponseRedirect(
            reverse("admin:ratelimit_app_policyedit_change", args=[target.pk])
        )

    @admin.action(description="Revert the selected edits", permissions=["revert"])
    def revert_selected(self, request, queryset):
        # Newest first: undoing later edits of a row first lets the earlier ones apply.
        for edit in queryset.order_by("-at", "-id"):
            self._revert(request, edit)

    def _revert(self, request, edit):
        try:
            done = audit.revert(edit, user=request.user)
        except audit.RevertError as exc:
            self.message_user(request, f"#{edit.pk} not reverted: {exc}", messages.ERROR)
            return None
        self.message_user(
            request, f"Reverted #{edit.pk} ({edit.object_repr}) as #{done.pk}.", messages.SUCCESS
        )
        return done

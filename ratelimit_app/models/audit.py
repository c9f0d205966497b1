"""The audit trail: one row per policy edit, with who, when, the revision and the values."""

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import models
from django.utils import timezone


class EditAction(models.TextChoices):
    CREATED = "created", "created"
    CHANGED = "changed", "changed"
    DELETED = "deleted", "deleted"
    LIFTED = "lifted", "ban lifted"
    OTHER = "other", "other"  # an operation on no row, e.g. counters reset


class PolicyEdit(models.Model):
    """An edit of the policy: the row's fields before and after (the changed ones for a
    change, all of them for a creation or deletion); secrets only as keyed hashes."""

    at = models.DateTimeField(default=timezone.now, db_index=True)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        help_text="Empty: made outside the admin (a shell, a command, code).",
    )
    action = models.CharField(max_length=8, choices=EditAction.choices)
    object_type = models.CharField("kind", max_length=32, db_index=True)
    object_id = models.CharField(max_length=64, blank=True)
    object_repr = models.CharField("object", max_length=200, blank=True)
    revision = models.PositiveBigIntegerField(
        default=0, help_text="The policy revision number after the edit."
    )
    old = models.JSONField(null=True, blank=True, encoder=DjangoJSONEncoder)
    new = models.JSONField(null=True, blank=True, encoder=DjangoJSONEncoder)
    summary = models.CharField(max_length=200, blank=True)
    reverts = models.ForeignKey(
        "self",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="reverted_by",
        help_text="The edit this one undid.",
    )

    class Meta:
        ordering = ["-at", "-id"]
        verbose_name = "policy edit"
        permissions = [("revert_policyedit", "Can revert policy edits")]
        indexes = [models.Index(fields=["object_type", "object_id"])]

    def __str__(self):
        return f"#{self.pk} {self.object_type} {self.object_repr} {self.action}"

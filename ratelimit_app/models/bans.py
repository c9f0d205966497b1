"""Ban models: the rules that watch token endpoints, and the bans they record."""

import re

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.utils import timezone

from ratelimit_app import paths
from ratelimit_app.models.policies import EndpointGroup

STATUS_LIST_RE = re.compile(r"^\s*[1-5]\d\d(\s*,\s*[1-5]\d\d)*\s*$")


class CountedBy(models.TextChoices):
    STATUS = "status", "the view's failure statuses (the middleware)"
    CLIENT_AUTHENTICATION = (
        "client_authentication",
        "failed client authentications (the django-oauth-toolkit validator)",
    )


class BanRule(models.Model):
    """Which token endpoint is watched, and how many failures ban a credential pair."""

    name = models.CharField(max_length=128)
    group = models.ForeignKey(
        EndpointGroup,
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        help_text="Watch every endpoint of this group, or give a path below.",
    )
    path = models.CharField(max_length=255, blank=True, help_text="For example /connect/token")
    methods = models.CharField(max_length=64, default="POST")
    failure_statuses = models.CharField(
        max_length=64, default="400", help_text="Comma-separated HTTP statuses counted as failures."
    )
    counted_by = models.CharField(
        "failures are",
        max_length=24,
        choices=CountedBy.choices,
        default=CountedBy.STATUS,
        help_text="Statuses: the middleware counts the watched view's failure statuses. "
        "Client authentications: ratelimit_app.contrib.oauth_toolkit's validator counts "
        "every failed client authentication of django-oauth-toolkit (token, revoke_token, "
        "introspect) with the pair the toolkit parsed, and checks the ban before the secret "
        "is hashed; the path or group above then only scopes the middleware's early check.",
    )
    threshold = models.PositiveIntegerField(default=5)
    window = models.PositiveIntegerField(default=600, help_text="Seconds failures are counted.")
    cooldown = models.PositiveIntegerField(default=600, help_text="Seconds a ban lasts.")
    extend_on_attempt = models.BooleanField(
        default=False, help_text="Each attempt during a ban starts the cooldown again."
    )
    reset_on_success = models.BooleanField(
        default=False, help_text="A success before the threshold clears the failure count."
    )
    client_id_threshold = models.PositiveIntegerField(
        null=True,
        blank=True,
        help_text="Off when empty. Failures per client_id across all secrets before it is "
        "banned: stops guessing secrets one pair at a time, but lets an attacker lock out a "
        "client whose id they know.",
    )
    ip_threshold = models.PositiveIntegerField(
        null=True,
        blank=True,
        help_text="Off when empty. Failures per client IP across all pairs before the IP is "
        "refused; clients behind one NAT share it.",
    )
    enabled = models.BooleanField(default=True)

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return self.name

    def status_set(self):
        """The failure statuses as a frozenset of ints."""
        return frozenset(int(s) for s in self.failure_statuses.split(",") if s.strip())

    def method_set(self):
        """The watched HTTP methods, upper case."""
        return frozenset(m.strip().upper() for m in self.methods.split(",") if m.strip())

    def clean(self):
        errors = {}
        if not self.group_id and not self.path:
            errors["path"] = "Name the endpoint: choose an endpoint group or give a path."
        if self.path:
            try:
                paths.compile_pattern(self.path)
            except ValueError as exc:
                errors["path"] = str(exc)
        if not STATUS_LIST_RE.match(self.failure_statuses or ""):
            errors["failure_statuses"] = "Give HTTP statuses separated by commas, such as 400,401."
        for field in ("threshold", "window", "cooldown"):
            if not getattr(self, field):
                errors[field] = "Must be at least 1."
        if errors:
            raise ValidationError(errors)


class CredentialBanQuerySet(models.QuerySet):
    def active(self, now=None):
        """Bans in force: not lifted and not yet expired."""
        now = now or timezone.now()
        return self.filter(lifted_at__isnull=True, expires_at__gt=now)


class BanKind(models.TextChoices):
    PAIR = "p", "client_id + secret"
    CLIENT_ID = "c", "client_id"
    IP = "i", "client address"


class CredentialBan(models.Model):
    """A ban of a client_id+client_secret pair (or, with the rule's optional thresholds,
    of a client_id or a client address), known by its keyed fingerprint."""

    rule = models.ForeignKey(BanRule, on_delete=models.SET_NULL, null=True, blank=True)
    kind = models.CharField("banned", max_length=1, choices=BanKind.choices, default=BanKind.PAIR)
    client_id = models.CharField(
        max_length=200, help_text="The client_id (the address, for a ban of an address)."
    )
    fingerprint = models.CharField(max_length=64, db_index=True)
    failures = models.PositiveIntegerField(default=0)
    banned_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField()
    lifted_at = models.DateTimeField(null=True, blank=True)
    lifted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True
    )
    # The policy revision that last wrote this row: processes read only the rows changed
    # since their snapshot's revision.
    revision = models.PositiveBigIntegerField(default=0, db_index=True, editable=False)

    objects = CredentialBanQuerySet.as_manager()

    class Meta:
        ordering = ["-banned_at"]
        permissions = [("lift_credentialban", "Can lift credential bans")]
        constraints = [
            models.UniqueConstraint(
                fields=["fingerprint", "banned_at"], name="ratelimit_app_one_ban_per_start"
            )
        ]

    def __str__(self):
        return f"{self.client_id} [{self.short_fingerprint}]"

    @property
    def short_fingerprint(self):
        """The first 12 characters of the fingerprint, enough to tell pairs apart."""
        return self.fingerprint[:12]

    def is_active(self, now=None):
        """Whether the ban is in force at ``now``."""
        now = now or timezone.now()
        return self.lifted_at is None and self.expires_at > now

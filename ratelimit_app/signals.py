"""Signals sent by ratelimit_app."""

from django.dispatch import Signal

# A request was denied. Arguments: request, decision.
request_throttled = Signal()
# The counter store failed. Arguments: error, breaker_open.
counter_backend_failed = Signal()
# The counter store answered again after failures. Arguments: failures.
counter_backend_recovered = Signal()
# A failure of a watched credential pair was counted. Arguments: rule_id, rule_name.
credential_failure_counted = Signal()
# A credential pair was banned. Arguments: ban, rule_name.
credential_banned = Signal()
# A credential ban was lifted. Arguments: ban, user.
credential_unbanned = Signal()
# A policy edit committed. Arguments: number, only_if_missing. The runtime publishes it
# through the counter store.
policy_revised = Signal()
# A process's policy snapshot is up to date with the database. Arguments: revision,
# built (a whole new snapshot, not only ban rows), seconds (the time it took).
policy_snapshot_refreshed = Signal()
# A process could not refresh its policy snapshot (the database down). Arguments: error.
policy_snapshot_refresh_failed = Signal()

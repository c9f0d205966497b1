"""Signals sent by ratelimit_app."""

from django.dispatch import Signal

# A request was denied. Arguments: request, decision.
request_throttled = Signal()
# The counter store failed. Arguments: error, breaker_open.
counter_backend_failed = Signal()
# The counter store answered again after failures. Arguments: failures.
counter_backend_recovered = Signal()
# A credential pair was banned. Arguments: ban.
credential_banned = Signal()
# A credential ban was lifted. Arguments: ban, user.
credential_unbanned = Signal()
# A policy edit committed. Arguments: number, only_if_missing. The runtime publishes it
# through the counter store.
policy_revised = Signal()

"""The policy snapshot: every enabled policy in memory, so that requests never query."""

from ratelimit_app.policy.build import build_snapshot
from ratelimit_app.policy.entries import BanRuleEntry, KeyEntry, LimitEntry, TenantEntry
from ratelimit_app.policy.holder import SnapshotHolder
from ratelimit_app.policy.keys import lookup_api_key
from ratelimit_app.policy.snapshot import PolicySnapshot

__all__ = [
    "BanRuleEntry",
    "KeyEntry",
    "LimitEntry",
    "PolicySnapshot",
    "SnapshotHolder",
    "TenantEntry",
    "build_snapshot",
    "lookup_api_key",
]

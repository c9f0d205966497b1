"""The preview: what a request by a tenant (or an API key) to a path or group would meet
now, read from the policy snapshot requests use and from the counter store without
charging it (Backend.peek).
"""

from dataclasses import dataclass, field

from ratelimit_app import identity, runtime
from ratelimit_app.conf import get_config
from ratelimit_app.console import entry_in_words
from ratelimit_app.counters.base import BackendUnavailable, Decision, LimitResult
from ratelimit_app.enforcement.specs import build_specs
from ratelimit_app.policy import LimitEntry, PolicySnapshot, TenantEntry, lookup_api_key
from ratelimit_app.responses import rate_limit_headers, retry_after_seconds

WHY_NOT_COUNTED = {
    "tenant": "not counted: the request has no active tenant",
    "api_key": "not counted: no API key given",
    "ip": "not counted: no client address given",
    "user": "not counted: per user (a user is not chosen here)",
}


@dataclass(frozen=True)
class Row:
    """One limit that applies: in words, and its figures now (None when not counted)."""

    group: str
    in_words: str
    shadow: bool
    not_counted: str = ""
    result: LimitResult | None = None
    remaining_now: int | None = None


@dataclass
class Preview:
    """What the preview page shows; ``error`` instead when it cannot be made."""

    group: str | None = None
    tenant: str = ""
    rows: list[Row] = field(default_factory=list)
    allowed: bool | None = None
    headers: dict[str, str] = field(default_factory=dict)
    error: str = ""
    notes: list[str] = field(default_factory=list)


def preview(
    *,
    tenant_id: int | None = None,
    api_key_prefix: str = "",
    path: str = "",
    group: str = "",
    ip: str = "",
) -> Preview:
    """The limits a request would meet now, their figures and the headers it would get.

    Nothing is charged. ``tenant_id`` or ``api_key_prefix`` says who asks (neither: an
    anonymous request); ``path`` routes as requests are routed (groups on top of others
    included), ``group`` names the endpoint group instead of, or besides, the path.
    """
    snapshot = runtime.get_snapshot()
    shown = Preview()
    key_id, tenant = _who(snapshot, tenant_id, api_key_prefix.strip().lower(), shown)
    if shown.error:
        return shown
    on_top: tuple[str, ...] = ()
    if path:
        path_group, on_top = snapshot.route(path)
        group = group or path_group or ""
    else:
        shown.notes.append("Groups on top of others apply by path: give a path to see them.")
    if group and group not in snapshot.groups:
        shown.error = f"No endpoint group {group[:64]!r} is in force."
        return shown
    shown.group = group or None
    shown.tenant = tenant.slug if tenant else ""
    bucket = _bucket(ip, shown)
    if shown.error:
        return shown
    who = identity.Identity(ip=bucket, api_key_id=key_id, user_id=None, tenant=tenant)
    limits = snapshot.limits_for(shown.group, tenant, on_top)
    _fill(shown, limits, who, snapshot)
    return shown


def _who(
    snapshot: PolicySnapshot, tenant_id: int | None, prefix: str, shown: Preview
) -> tuple[int | None, TenantEntry | None]:
    """The API key id and tenant entry a request would be counted as."""
    key_id = None
    if prefix:
        entry = snapshot.api_keys.get(prefix) or lookup_api_key(prefix, snapshot)
        if entry is None:
            shown.error = f"No API key in force has the prefix {prefix[:16]!r} (revoked?)."
            return None, None
        key_id, tenant_id = entry.id, entry.tenant_id
    tenant = snapshot.tenants.get(tenant_id) if tenant_id is not None else None
    if tenant is not None and not tenant.active:
        shown.notes.append(f"The tenant {tenant.slug!r} is inactive: its requests count as none.")
        tenant = None
    return key_id, tenant


def _bucket(ip: str, shown: Preview) -> str | None:
    if not ip.strip():
        return None
    address = identity.parse_address(ip.strip())
    if address is None:
        shown.error = f"{ip.strip()[:64]!r} is not an IP address."
        return None
    return identity.bucket_of(address, int(get_config()["IPV6_PREFIX"]))


def _fill(
    shown: Preview,
    limits: tuple[LimitEntry, ...],
    who: identity.Identity,
    snapshot: PolicySnapshot,
) -> None:
    """Rows for ``limits``, with the counter store's figures for those it counts."""
    config = get_config()
    counted = [(limit, build_specs((limit,), who, config)) for limit in limits]
    specs = [spec for _limit, found in counted for spec in found]
    decision = None
    if specs:
        try:
            decision = runtime.get_backend().peek(specs, now=runtime.now_us())
        except BackendUnavailable as exc:
            shown.error = f"The counter store did not answer ({exc.kind}): no figures now."
    results = iter(decision.results) if decision is not None else iter(())
    for limit, found in counted:
        row = Row(group=limit.group, in_words=entry_in_words(limit), shadow=limit.shadow)
        if not found:
            row = Row(**{**row.__dict__, "not_counted": WHY_NOT_COUNTED[limit.scope]})
        elif decision is not None:
            result = next(results)
            row = Row(**{**row.__dict__, "result": result, "remaining_now": _now(result, decision)})
        shown.rows.append(row)
    if decision is not None:
        shown.allowed = decision.allowed
        style = snapshot.header_style(shown.group)
        shown.headers = rate_limit_headers(decision, config, style)
        if not decision.allowed:
            shown.headers["Retry-After"] = str(retry_after_seconds(decision.retry_after))


def _now(result: LimitResult, decision: Decision) -> int:
    """A limit's remaining before the previewed request: a request it admits would have
    taken one (a limit that denies, or one whose request another denied, took none)."""
    return result.remaining + 1 if decision.allowed and result.allowed else result.remaining

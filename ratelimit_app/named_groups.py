"""The endpoint groups that views name in their code, found by walking the URLconf.

Used by the system check that reports names no group has (W010), and by the admin,
which keeps such a group's slug from being renamed from under the views.
"""

from collections.abc import Callable, Iterable, Iterator
from typing import Any

from django.urls import URLPattern, URLResolver, get_resolver


def named_groups(urlconf: str | None = None) -> dict[str, str]:
    """Each route (as written in the URLconf) whose view names a group, with that group."""
    return dict(_walk(get_resolver(urlconf).url_patterns, ""))


def _walk(patterns: Iterable[Any], prefix: str) -> Iterator[tuple[str, str]]:
    for pattern in patterns:
        route = prefix + str(pattern.pattern)
        if isinstance(pattern, URLResolver):
            yield from _walk(pattern.url_patterns, route)
        elif isinstance(pattern, URLPattern):
            group = view_group(pattern.callback)
            if group:
                yield route, group


def view_group(callback: Callable[..., Any]) -> str | None:
    """The group a view names in its code: ``@ratelimit(group=...)``, a class's
    ``ratelimit_group``, or a DRF ``throttle_scope`` read by this app's throttle."""
    group = getattr(callback, "ratelimit_group", None)
    view_class = getattr(callback, "view_class", None) or getattr(callback, "cls", None)
    if group is None and view_class is not None:
        group = getattr(view_class, "ratelimit_group", None)
        throttles = getattr(view_class, "throttle_classes", None) or ()
        # PolicyThrottle and its subclasses say so (this module imports no surface).
        ours = any(getattr(t, "checks_through_pipeline", False) for t in throttles)
        if group is None and ours:
            group = getattr(view_class, "throttle_scope", None)
    return group if isinstance(group, str) else None

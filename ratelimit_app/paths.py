"""Path normalization and the path patterns that map plain views to endpoint groups."""

import re
from urllib.parse import unquote

from ratelimit_app import bounded

_SLASHES = re.compile(r"/{2,}")
MAX_DECODE_ROUNDS = 3


@bounded.memoized(max_size=10_000)
def normalize_path(path: str) -> str:
    """A canonical form of a request path: decoded, lower case, single slashes, no trailing one.

    ``//X``, ``/x/``, ``/%78`` and ``/x`` all give ``/x``, so a client cannot dodge a
    group's limit by spelling the path another way.
    """
    for _ in range(MAX_DECODE_ROUNDS):
        decoded = unquote(path)
        if decoded == path:
            break
        path = decoded
    path = _SLASHES.sub("/", "/" + path.lower())
    segments: list[str] = []
    for segment in path.split("/"):
        if segment in ("", "."):
            continue
        if segment == "..":
            if segments:
                segments.pop()
            continue
        segments.append(segment)
    return "/" + "/".join(segments)


def compile_pattern(pattern: str) -> re.Pattern[str]:
    """Compile one group path pattern into a regex over normalized paths.

    ``/a/b`` matches that path; ``/a/*`` matches ``/a`` and everything below it;
    a ``*`` inside a path matches one segment.
    """
    pattern = pattern.strip()
    if not pattern.startswith("/"):
        raise ValueError(f"The path pattern {pattern!r} must start with '/'.")
    below = pattern.endswith("/*")
    if below:
        pattern = pattern[:-2]
    # A `*` travels through normalization as NUL (re.escape leaves it as it is), then
    # matches any run of characters within its segment.
    parts = [p for p in normalize_path(pattern.replace("*", "\0")).split("/") if p]
    body = "".join("/" + re.escape(p).replace("\0", "[^/]*") for p in parts)
    if below:
        # The path itself or anything below it: every path for "/*" (an empty body).
        return re.compile(f"^{body}(/.*)?$")
    return re.compile(f"^{body or '/'}$")


def pattern_specificity(pattern: str) -> tuple[int, bool]:
    """Sort key: longer, exact patterns win over shorter or wildcard ones."""
    return (len(pattern.rstrip("*")), "*" not in pattern)

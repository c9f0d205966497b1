"""counter_keys: the keys a reset clears are the keys requests are counted under."""

import pytest

from ratelimit_app.enforcement.specs import ALGORITHM_LETTERS, build_specs, counter_keys
from ratelimit_app.identity import Identity
from ratelimit_app.policy import LimitEntry

CONFIG = {"KEY_PREFIX": "rl"}
WHO = Identity(ip="203.0.113.7", api_key_id=42, user_id="u9", tenant=None)
VALUES = {"ip": "203.0.113.7", "api_key": 42, "user": "u9"}


@pytest.mark.parametrize("scope", sorted(VALUES))
@pytest.mark.parametrize("algorithm", sorted(ALGORITHM_LETTERS))
def test_every_counter_a_request_uses_is_among_its_partys_keys(scope, algorithm):
    limit = LimitEntry("web", scope, algorithm, 10, 60, None, False)
    (spec,) = build_specs((limit,), WHO, CONFIG)
    keys = counter_keys(scope, VALUES[scope], ["web." + scope + ".60"], "rl")
    assert spec.key in keys
    # One key per algorithm, each under the party's own tag and the prefix.
    assert len(keys) == len(set(keys)) == len(ALGORITHM_LETTERS)
    tag = spec.key.split(":")[1]
    assert all(key.startswith(f"rl:{tag}:web.{scope}.60") for key in keys)


def test_another_party_or_scope_has_other_keys():
    names = ["web.ip.60", "web.ip.3600"]
    mine = set(counter_keys("ip", "203.0.113.7", names, "rl"))
    assert len(mine) == 2 * len(ALGORITHM_LETTERS)
    assert mine.isdisjoint(counter_keys("ip", "203.0.113.8", names, "rl"))
    assert mine.isdisjoint(counter_keys("api_key", "203.0.113.7", names, "rl"))
    assert all("203.0.113.7" not in key for key in mine)  # a keyed hash, not the address

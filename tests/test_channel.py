"""The hot path's connections: packing, one connection per call in flight, per process."""

import subprocess
import sys
import threading
from pathlib import Path

import pytest
import redis

from ratelimit_app.counters.channel import IDLE_PROBE_SECONDS, Channel, pack
from tests.clock_support import ManualClock
from tests.counters_support import unique_key

pytestmark = pytest.mark.services


def client_id(channel):
    return channel.call(pack("CLIENT", "ID"))


def test_pack_matches_redis_py():
    packer = redis.Connection()._command_packer
    expected = b"".join(packer.pack("EVALSHA", "ab", "2", "k1", "", "é", "10"))
    assert pack("EVALSHA", b"ab", "2", "k1", "", "é", "10") == expected


def test_calls_in_turn_reuse_one_connection(private_redis):
    channel = Channel(redis.ConnectionPool.from_url(private_redis.url))
    first = client_id(channel)
    seen = []
    thread = threading.Thread(target=lambda: seen.append(client_id(channel)))
    thread.start()
    thread.join()
    assert seen == [first] and client_id(channel) == first


def test_calls_in_flight_together_never_share_a_connection(private_redis):
    channel = Channel(redis.ConnectionPool.from_url(private_redis.url))
    admin = redis.Redis.from_url(private_redis.url)
    key, popped = unique_key(), []
    waiting = threading.Thread(target=lambda: popped.append(channel.call(pack("BLPOP", key, "10"))))
    waiting.start()
    while not any(c["cmd"] == "blpop" for c in admin.client_list()):
        pass  # until the first call is inside Redis, blocked on its connection
    blocked_id = next(int(c["id"]) for c in admin.client_list() if c["cmd"] == "blpop")
    assert client_id(channel) != blocked_id  # answered at once, on another connection
    admin.rpush(key, "x")
    waiting.join()
    assert popped == [[key.encode(), b"x"]]  # the first call got its own reply


FORK_SCRIPT = """
import os, sys, redis
from ratelimit_app.counters.channel import Channel, pack
channel = Channel(redis.ConnectionPool.from_url(sys.argv[1]))
client_id = lambda: channel.call(pack("CLIENT", "ID"))
parent = client_id()
read, write = os.pipe()
pid = os.fork()
if pid == 0:  # the child: report its connection's id and leave at once
    os.write(write, str(client_id()).encode())
    os._exit(0)
os.close(write)
child = int(os.read(read, 64) or 0)
os.waitpid(pid, 0)
print(parent, child, client_id())
"""


def test_a_forked_child_never_uses_its_parents_socket(private_redis):
    # In a process of its own: forking this multi-threaded test process is unsafe.
    output = subprocess.run(
        [sys.executable, "-c", FORK_SCRIPT, private_redis.url],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).resolve().parent.parent,
    ).stdout
    parent, child, parent_again = map(int, output.split())
    assert child and child != parent
    assert parent_again == parent  # the parent's reply stream is intact


def test_a_connection_closed_while_idle_is_replaced_before_use(private_redis):
    clock = ManualClock()
    channel = Channel(redis.ConnectionPool.from_url(private_redis.url), clock=clock)
    first = client_id(channel)
    redis.Redis.from_url(private_redis.url).client_kill_filter(_id=first)
    clock.now += IDLE_PROBE_SECONDS + 0.1
    replacement = client_id(channel)  # no error: the probe saw the close
    assert replacement not in (None, first)


def test_a_connection_broken_while_busy_fails_once_then_is_replaced(private_redis):
    clock = ManualClock()
    channel = Channel(redis.ConnectionPool.from_url(private_redis.url), clock=clock)
    first = client_id(channel)
    redis.Redis.from_url(private_redis.url).client_kill_filter(_id=first)
    # Busy connections are not probed: the broken one fails this call (the limiter
    # then applies its failure mode) and the next call connects afresh.
    with pytest.raises(redis.ConnectionError):
        client_id(channel)
    assert client_id(channel) not in (None, first)


def test_an_idle_connection_that_is_fine_is_kept(private_redis):
    clock = ManualClock()
    channel = Channel(redis.ConnectionPool.from_url(private_redis.url), clock=clock)
    first = client_id(channel)
    clock.now += IDLE_PROBE_SECONDS + 0.1
    assert client_id(channel) == first


def test_an_error_reply_keeps_the_connection(private_redis):
    channel = Channel(redis.ConnectionPool.from_url(private_redis.url))
    first = client_id(channel)
    with pytest.raises(redis.ResponseError):
        channel.call(pack("NOSUCHCOMMAND", unique_key()))
    assert client_id(channel) == first


def test_the_check_command_is_what_redis_py_would_send():
    from ratelimit_app.counters.algorithms import BAN, GCRA, LimitSpec
    from ratelimit_app.counters.redis import check_command, limit_args

    specs = [
        LimitSpec("k:1g:a", GCRA, 10, 60, 20),
        LimitSpec("k:2b:b", BAN, 5, 600, extend=True),
    ]
    packer = redis.Connection()._command_packer
    for cost, now in ((1, None), (3, 1_700_000_000_123_456)):
        args = ["" if now is None else str(now), str(cost), "1"]
        args += [value for spec in specs for value in limit_args(spec)]
        expected = packer.pack("EVALSHA", "f" * 40, 3, "k:1g:a", "k:2b:b", "rev", *args)
        assert check_command("f" * 40, specs, "rev", cost, now) == b"".join(expected)


def test_a_finished_thread_leaves_no_connection_open(private_redis):
    admin = redis.Redis.from_url(private_redis.url)
    channel = Channel(redis.ConnectionPool.from_url(private_redis.url))
    # Connections of other tests may close meanwhile: count only those opened since.
    newest_before = max(int(c["id"]) for c in admin.client_list())
    for _ in range(20):  # one thread per request, as runserver does
        thread = threading.Thread(target=lambda: client_id(channel))
        thread.start()
        thread.join()
    opened = [c for c in admin.client_list() if int(c["id"]) > newest_before]
    assert len(opened) == 1  # one, reused, not one per thread


def test_a_primary_without_replicas_drops_the_connection_a_missing_script_does_not(
    private_redis,
):
    """Behind Sentinel a demoted or cut-off primary answers READONLY or NOREPLICAS: the
    connection must not stay on it (its next use connects afresh and asks the
    sentinels). NOSCRIPT is answered by loading the script on the same server."""
    channel = Channel(redis.ConnectionPool.from_url(private_redis.url))
    admin = redis.Redis.from_url(private_redis.url)
    first = client_id(channel)
    with pytest.raises(redis.exceptions.NoScriptError):
        channel.call(pack("EVALSHA", "0" * 40, "0"))
    assert client_id(channel) == first
    admin.config_set("min-replicas-to-write", 1)
    try:
        with pytest.raises(redis.ResponseError, match="NOREPLICAS"):
            channel.call(pack("SET", unique_key(), "1"))
    finally:
        admin.config_set("min-replicas-to-write", 0)
    assert client_id(channel) != first

"""Two beat processes started by mistake do not fire the schedule twice (celery-redbeat's lock)."""
import os
import subprocess
import sys
import time
from pathlib import Path

import redis

BEAT_BROKER_DB, BEAT_LOCK_DB = 12, 13  # no test worker consumes these


def _queued_heartbeats(client: redis.Redis) -> int:
    return sum(client.llen(key) for key in client.scan_iter(match="default*") if client.type(key) == b"list")


def _start_beat(env):
    celery = str(Path(sys.executable).parent / "celery")
    return subprocess.Popen([celery, "-A", "bitbylaw_tasks.celery_app", "beat", "-S", "redbeat.RedBeatScheduler",
                             "--loglevel", "WARNING"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _beat_env(redis_server) -> tuple[redis.Redis, dict]:
    """Empty broker and lock databases of their own, and the environment of a beat firing every second."""
    broker = redis.Redis.from_url(redis_server.url(BEAT_BROKER_DB))
    broker.flushdb()
    redis.Redis.from_url(redis_server.url(BEAT_LOCK_DB)).flushdb()
    env = dict(os.environ, REDIS_BROKER_URL=redis_server.url(BEAT_BROKER_DB),
               REDIS_LOCK_URL=redis_server.url(BEAT_LOCK_DB), HEARTBEAT_INTERVAL="1")
    return broker, env


def test_two_beats_fire_once(redis_server):
    broker, env = _beat_env(redis_server)
    first = _start_beat(env)
    second = _start_beat(env)
    try:
        deadline = time.time() + 30
        while _queued_heartbeats(broker) < 1 and time.time() < deadline:
            time.sleep(0.1)
        assert _queued_heartbeats(broker) >= 1, "beat never fired"
        start_count, start = _queued_heartbeats(broker), time.time()
        time.sleep(6)
        fired = _queued_heartbeats(broker) - start_count
        elapsed = time.time() - start
        # one beat at 1 s: about `elapsed` firings; two unlocked beats would give about twice that
        assert 2 <= fired <= elapsed + 1.5, (fired, elapsed)
        assert first.poll() is None and second.poll() is None, "both beats should still be running"
    finally:
        for proc in (first, second):
            proc.terminate()
        for proc in (first, second):
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()


def test_one_beat_alone_fires_at_the_interval(redis_server):
    """Control for the test above: the counting method sees every firing of a single beat."""
    broker, env = _beat_env(redis_server)
    beat = _start_beat(env)
    try:
        deadline = time.time() + 30
        while _queued_heartbeats(broker) < 1 and time.time() < deadline:
            time.sleep(0.1)
        start_count, start = _queued_heartbeats(broker), time.time()
        time.sleep(4)
        fired = _queued_heartbeats(broker) - start_count
        assert fired >= 3, fired
    finally:
        beat.terminate()
        beat.wait(timeout=10)

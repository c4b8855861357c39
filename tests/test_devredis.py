"""Redis is provided, not assumed: ensure_redis uses a live server or starts a private one."""
from bitbylaw_tasks.devredis import ensure_redis, free_port, redis_answers, with_db


def test_uses_a_redis_that_answers(redis_server):
    url, private = ensure_redis(redis_server.url(5))
    assert private is None and url == redis_server.url(5)


def test_starts_a_private_redis_when_none_answers():
    dead = f"redis://127.0.0.1:{free_port()}/3"
    assert not redis_answers(dead)
    url, private = ensure_redis(dead)
    try:
        assert private is not None and url.endswith("/3") and redis_answers(url)
    finally:
        private.stop()
    assert not redis_answers(url)


def test_with_db():
    assert with_db("redis://:pw@h:1/0", 2) == "redis://:pw@h:1/2"

"""Coalesced enqueueing: de-duplicate and publish many entity tasks in one Redis round trip.

Many webhooks for one entity within a short window must yield one queued
task, yet a change that arrives after that task *started* must yield one more
(SPEC §7). The rule:

- enqueueing sets `coalesce:{key}` (SET NX, with a TTL) and pushes the task
  message only when the key was new — both inside one Lua script, so a
  request costs one round trip however many ids it carries;
- the task deletes its key first thing when it starts (`mark_started`), so
  anything arriving later queues a new task.

The coalescing keys live in the broker's Redis database, beside the queues
they describe: if Redis loses the queue (restart), it loses these keys too,
and no entity is left "already queued" with nothing in the queue.

The message is built by Celery (`create_task_message`) and routed by kombu's
own `basic_publish`; only its final `LPUSH` is captured and run inside the
script — once per task name and argument shape, as a template whose entity
id, task id and delivery tag are filled in per message. Such tasks skip the
optional `task-sent` event; Flower shows them from `task-received` on.

The capture uses kombu's publish-batch hook (`_publish_batch`, the internal
way kombu's own `PublishBatch` buffers commands): kombu is pinned to the minor
version `tests/test_clients_wiring.py` checks (a kombu that builds or routes
messages differently fails that test, not production).
"""
from __future__ import annotations

import base64
import json
import re
import threading
import uuid
from dataclasses import dataclass

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry
from celery import Celery
from kombu.exceptions import OperationalError
from kombu.serialization import dumps as kombu_dumps

COALESCE_TTL = 15 * 60
# Slots in a message template; real values never contain "@".
ENTITY_SLOT, TASK_ID_SLOT, DELIVERY_TAG_SLOT = "@@entity@@", "@@task-id@@", "@@delivery-tag@@"
TEMPLATE_SAFE_ID = re.compile(r"^[0-9A-Za-z-]{1,64}$")  # a lost message frees its entity for re-enqueueing after this long

_SCRIPT = """
local ttl = tonumber(ARGV[1])
local out = {}
for i, key in ipairs(KEYS) do
  if redis.call('SET', key, '1', 'NX', 'EX', ttl) then
    redis.call('LPUSH', ARGV[2 * i], ARGV[2 * i + 1])
    out[i] = 1
  else
    out[i] = 0
  end
end
return out
"""


class QueueUnavailable(Exception):
    """The broker's Redis cannot be reached: nothing was queued."""


@dataclass(frozen=True)
class EntityTask:
    """One task to enqueue: `task_name(*args)`, coalesced under `coalesce_key`."""

    task_name: str
    args: tuple
    coalesce_key: str


def coalesce_key(domain: str, entity_id: str, action: str = "sync") -> str:
    """Create/update/check coalesce together; a delete is its own key."""
    suffix = ":delete" if action == "delete" else ""
    return f"coalesce:{domain}:{entity_id}{suffix}"


class _CaptureLpush:
    """Stands in for kombu's publish batch to capture the final LPUSH of a routed message."""

    def __init__(self):
        self.commands: list[tuple[str, tuple]] = []

    def add(self, name, *args):
        self.commands.append((name, args))


class Enqueuer:
    """Publishes `EntityTask`s through the Lua script on the broker's Redis."""

    def __init__(self, app: Celery, ttl: int = COALESCE_TTL, *, single_connection: bool = False):
        """`single_connection`: keep one Redis connection instead of taking one from redis-py's pool for every
        call. The pool checks each connection it hands out with a non-blocking read (a syscall, ~35 us here, a
        quarter of the webhook shim's handler); the shim's sync gunicorn workers enqueue from one thread at a
        time, so they need no pool. The connection is opened by the first call, not here (redis-py's
        single-connection client connects when it is built): the web app starts while Redis is down and
        answers 503 until it is back. A connection the server dropped (a restart, an idle timeout) is found by
        the next command; redis-py's `Retry` then reconnects and sends it once more (harmless: the script
        coalesces, so a message already queued is not queued twice)."""
        self.app = app
        self.ttl = ttl
        self._lock = threading.Lock()
        self._channel = None
        self._single_connection = single_connection
        self._client: redis.Redis | None = None if single_connection else self._new_client()
        self._script = None if self._client is None else self._client.register_script(_SCRIPT)
        self._templates: dict[tuple, tuple[str, str]] = {}

    def _new_client(self) -> redis.Redis:
        options = {}
        if self._single_connection:
            options = {"single_connection_client": True,
                       "retry": Retry(NoBackoff(), 1, supported_errors=(redis.ConnectionError,))}
        return redis.Redis.from_url(self.app.conf.broker_url, socket_connect_timeout=2, socket_timeout=5,
                                    **options)

    @property
    def _redis(self) -> redis.Redis:
        """The broker's Redis client; a single-connection client is built (and connects) on first use."""
        if self._client is None:
            with self._lock:
                if self._client is None:
                    client = self._new_client()
                    self._script = client.register_script(_SCRIPT)
                    self._client = client
        return self._client

    def _kombu_channel(self):
        with self._lock:
            if self._channel is None:
                self._channel = self.app.connection_for_write().default_channel
            return self._channel

    def _payload(self, task: EntityTask) -> tuple[str, str]:
        """(redis list key, serialized message) for one task: from a per-process template when the
        entity id has EspoCRM's shape, else built from scratch."""
        entity_id = task.args[0] if task.args else None
        if not isinstance(entity_id, str) or not TEMPLATE_SAFE_ID.match(entity_id):
            return self._build(task)
        signature = (task.task_name, json.dumps(task.args[1:]))
        template = self._templates.get(signature)
        if template is None:
            template = self._templates[signature] = self._template(task)
        key, text = template
        return key, (text.replace(TASK_ID_SLOT, str(uuid.uuid4()))
                         .replace(DELIVERY_TAG_SLOT, str(uuid.uuid4()))
                         .replace(ENTITY_SLOT, entity_id))

    def _template(self, task: EntityTask) -> tuple[str, str]:
        """The message for `task` with slots for the entity id, task id and delivery tag.

        Celery builds it and kombu routes it once; the body is stored as plain
        UTF-8 JSON (no `body_encoding`, which kombu's consumer accepts) so the
        slots can be filled by string replacement, ~100 µs cheaper per message.
        """
        key, payload = self._build(EntityTask(task.task_name, (ENTITY_SLOT, *task.args[1:]), task.coalesce_key),
                                   task_id=TASK_ID_SLOT)
        message = json.loads(payload)
        properties = message["properties"]
        if properties.pop("body_encoding", None) == "base64":
            message["body"] = base64.b64decode(message["body"]).decode("utf-8")
        properties["delivery_tag"] = DELIVERY_TAG_SLOT
        return key, json.dumps(message)

    def _build(self, task: EntityTask, task_id: str | None = None) -> tuple[str, str]:
        """(redis list key, serialized message) for one task, built by Celery and routed by kombu."""
        queue = self.app.amqp.router.route({}, task.task_name)["queue"].name
        task_id = task_id or str(uuid.uuid4())
        message = self.app.amqp.create_task_message(task_id, task.task_name, list(task.args), {})
        content_type, content_encoding, body = kombu_dumps(message.body, serializer="json")
        channel = self._kombu_channel()
        prepared = channel.prepare_message(body, None, content_type, content_encoding,
                                           message.headers, message.properties)
        capture = _CaptureLpush()
        channel.basic_publish(prepared, exchange="", routing_key=queue, _publish_batch=capture)
        (name, (key, payload)), = capture.commands
        assert name == "lpush"
        return key, payload

    def enqueue(self, tasks: list[EntityTask]) -> list[bool]:
        """Enqueue each task unless its key is already pending; True where a task was queued.

        Raises `QueueUnavailable` when the broker cannot be reached (then nothing was queued).
        """
        try:
            return self._enqueue(tasks)
        except (redis.RedisError, OSError, OperationalError) as exc:
            raise QueueUnavailable(str(exc)) from exc

    def _enqueue(self, tasks: list[EntityTask]) -> list[bool]:
        unique: dict[str, EntityTask] = {}
        for task in tasks:
            unique.setdefault(task.coalesce_key, task)
        if not unique:
            return [False] * len(tasks)
        keys, argv = [], [self.ttl]
        for task in unique.values():
            key, payload = self._payload(task)
            keys.append(task.coalesce_key)
            argv += [key, payload]
        client = self._redis
        flags = dict(zip(keys, (bool(v) for v in self._script(keys=keys, args=argv, client=client))))
        seen: set[str] = set()
        out = []
        for task in tasks:
            first = task.coalesce_key not in seen
            seen.add(task.coalesce_key)
            out.append(first and flags[task.coalesce_key])
        return out

    def waiting(self, queue: str) -> int:
        """Messages waiting in `queue` (a Redis list on the broker): work queued but not yet started."""
        return int(self._redis.llen(queue))

    def mark_started(self, key: str) -> None:
        """Called by the task as it starts: later changes must queue a new task."""
        self._redis.delete(key)


_ENQUEUERS: dict[int, Enqueuer] = {}
_ENQUEUERS_LOCK = threading.Lock()


def enqueuer_for(app: Celery) -> Enqueuer:
    """One `Enqueuer` per Celery app per process."""
    with _ENQUEUERS_LOCK:
        if id(app) not in _ENQUEUERS:
            _ENQUEUERS[id(app)] = Enqueuer(app)
        return _ENQUEUERS[id(app)]

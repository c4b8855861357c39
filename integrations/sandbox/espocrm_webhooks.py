"""EspoCRM's webhook machinery for the simulator: subscriptions, the two-stage queue, signed batched delivery.

Modelled on EspoCRM's `Webhook\\Manager` / `Queue` / `Sender`:
- an event is queued only if an active webhook for it exists at that moment;
- each job run first turns up to `event_portion_size` (20) queued events into
  per-webhook items, then sends ONE batch of up to `batch_size` (50) due items
  per webhook;
- the body is the JSON array as PHP's `json_encode` writes it (`\\/`, `\\uXXXX`);
- `Signature: base64(webhookId + ':' + hex(HMAC-SHA256(body, secretKey)))`
  and the legacy `X-Signature: base64(webhookId + ':' + raw HMAC)`;
- 2xx/3xx succeed; 410 drops the webhook and its items; 0 (connection
  failure), 401, 403, 404, 405, 408 (timeout), 500, 503 are retried after
  `retry_interval` seconds, `max_attempts` attempts in all; anything else
  fails at once.
"""
from __future__ import annotations

import base64
import collections
import hashlib
import hmac
import json
import threading
import time
from typing import Callable

import requests

RETRIED_CODES = frozenset({0, 401, 403, 404, 405, 408, 500, 503})
EVENT_TYPES = ("create", "update", "delete")


def php_json_encode(value) -> bytes:
    """Bytes exactly as PHP's `json_encode($value)` (no flags) produces them for JSON-able data."""
    text = json.dumps(value, ensure_ascii=True, separators=(",", ":"))
    return text.replace("/", "\\/").encode("ascii")


def signature(webhook_id: str, secret_key: str, body: bytes) -> str:
    """The `Signature` header EspoCRM (v9+) sends."""
    digest = hmac.new(secret_key.encode(), body, hashlib.sha256).hexdigest()
    return base64.b64encode(f"{webhook_id}:{digest}".encode()).decode("ascii")


def legacy_signature(webhook_id: str, secret_key: str, body: bytes) -> str:
    """The legacy `X-Signature` header (raw binary HMAC), sent until EspoCRM v11."""
    digest = hmac.new(secret_key.encode(), body, hashlib.sha256).digest()
    return base64.b64encode(webhook_id.encode() + b":" + digest).decode("ascii")


class WebhookHub:
    """Subscriptions, the event queue and the delivery job of one simulated EspoCRM."""

    def __init__(self, *, new_id: Callable[[], str], new_secret: Callable[[], str], now: Callable[[], str],
                 entity_types: tuple[str, ...], interval: float = 2.0, retry_interval: float = 600.0,
                 batch_size: int = 50, event_portion_size: int = 20, portion_size: int = 20,
                 max_attempts: int = 4, connect_timeout: float = 5.0, timeout: float = 10.0):
        self.new_id, self.new_secret, self.now = new_id, new_secret, now
        self.entity_types = entity_types
        self.interval = interval
        self.retry_interval = retry_interval
        self.batch_size = batch_size
        self.event_portion_size = event_portion_size
        self.portion_size = portion_size
        self.max_attempts = max_attempts
        self.connect_timeout = connect_timeout
        self.timeout = timeout
        self.lock = threading.RLock()
        self._job_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._session = requests.Session()
        self.clear()

    # ------------------------------------------------------------ subscriptions
    def clear(self) -> None:
        with self.lock:
            self.webhooks: dict[str, dict] = {}
            self.events: collections.deque = collections.deque()   # not yet split per webhook
            self.items: list[dict] = []                             # per-webhook queue items
            self.deliveries: collections.deque = collections.deque(maxlen=5000)
            self._number = 0

    def subscribe(self, event: str, url: str, user: dict, *, skip_own: bool = False) -> dict:
        """Validate and store a subscription; raises ValueError with a reason for a 400."""
        if not isinstance(event, str) or not isinstance(url, str) or not url:
            raise ValueError("event and url are required")
        parts = event.split(".")
        valid = (len(parts) == 2 and parts[1] in EVENT_TYPES) or (len(parts) == 3 and parts[1] == "fieldUpdate")
        if not valid or parts[0] not in self.entity_types:
            raise ValueError("Bad event")
        if not url.startswith(("http://", "https://")):
            raise ValueError("Bad url")
        now = self.now()
        webhook = {"id": self.new_id(), "event": event, "url": url, "isActive": True, "userId": user["id"],
                   "userName": user["name"], "entityType": parts[0], "type": parts[1],
                   "field": parts[2] if len(parts) == 3 else None, "secretKey": self.new_secret(),
                   "skipOwn": bool(skip_own), "createdAt": now, "modifiedAt": now}
        with self.lock:
            self.webhooks[webhook["id"]] = webhook
        self.ensure_worker()
        return dict(webhook)

    def delete(self, webhook_id: str) -> bool:
        with self.lock:
            if self.webhooks.pop(webhook_id, None) is None:
                return False
            self.items = [i for i in self.items if i["webhookId"] != webhook_id]
            return True

    def list(self) -> list[dict]:
        with self.lock:
            return [dict(w) for w in self.webhooks.values()]

    # ------------------------------------------------------------ events
    def emit(self, event: str, target_id: str, data: dict, user_id: str | None = None) -> None:
        """Queue an event (caused by `user_id`) if (and only if) an active webhook listens for it right now."""
        with self.lock:
            if not any(w["event"] == event and w["isActive"] for w in self.webhooks.values()):
                return
            self._number += 1
            self.events.append({"number": self._number, "event": event, "targetId": target_id,
                                "userId": user_id, "data": json.loads(json.dumps(data))})

    def pending(self) -> dict:
        with self.lock:
            return {"events": list(self.events), "items": [dict(i) for i in self.items]}

    # ------------------------------------------------------------ the job
    def run_job(self) -> list[dict]:
        """One run of EspoCRM's 'Process Webhook Queue' job; returns the deliveries it made."""
        with self._job_lock:
            batches = self._prepare()
            return [self._send(*batch) for batch in batches]

    def flush(self, max_runs: int = 1000) -> list[dict]:
        """Run the job until nothing is due (retries scheduled in the future stay queued)."""
        delivered: list[dict] = []
        for _ in range(max_runs):
            batch = self.run_job()
            idle = self.idle()
            delivered.extend(batch)
            if idle:
                break
        return delivered

    def idle(self) -> bool:
        """Nothing for the job to do now: no event queued, no delivery due (one in flight is still due: it
        stays Pending until the receiver answered; retries scheduled later do not count)."""
        with self.lock:
            return not self.events and not self._due_webhook_ids()

    def _due_webhook_ids(self) -> list[str]:
        now = time.monotonic()
        seen: list[str] = []
        for item in sorted(self.items, key=lambda i: i["number"]):
            if item["status"] == "Pending" and (item["processAt"] is None or item["processAt"] <= now):
                if item["webhookId"] not in seen:
                    seen.append(item["webhookId"])
        return seen

    def _prepare(self) -> list[tuple[dict, list[dict]]]:
        with self.lock:
            for _ in range(min(self.event_portion_size, len(self.events))):
                event = self.events.popleft()
                for webhook in sorted(self.webhooks.values(), key=lambda w: w["createdAt"]):
                    own = webhook.get("skipOwn") and event.get("userId") == webhook["userId"]
                    if webhook["event"] == event["event"] and webhook["isActive"] and not own:
                        self.items.append({"number": event["number"], "webhookId": webhook["id"],
                                           "event": event["event"], "targetId": event["targetId"],
                                           "data": event["data"], "status": "Pending", "attempts": 0,
                                           "processAt": None})
            now = time.monotonic()
            batches = []
            for webhook_id in self._due_webhook_ids()[: self.portion_size]:
                due = [i for i in sorted(self.items, key=lambda i: i["number"])
                       if i["webhookId"] == webhook_id and i["status"] == "Pending"
                       and (i["processAt"] is None or i["processAt"] <= now)][: self.batch_size]
                batches.append((dict(self.webhooks[webhook_id]), due))
            return batches

    def _send(self, webhook: dict, items: list[dict]) -> dict:
        body = php_json_encode([item["data"] for item in items])
        headers = {"Content-Type": "application/json",
                   "Signature": signature(webhook["id"], webhook["secretKey"], body),
                   "X-Signature": legacy_signature(webhook["id"], webhook["secretKey"], body)}
        error = None
        try:
            response = self._session.post(webhook["url"], data=body, headers=headers,
                                          timeout=(self.connect_timeout, self.timeout), allow_redirects=True)
            code = response.status_code
        except requests.Timeout:
            code, error = 408, "timeout"
        except requests.RequestException as exc:
            code, error = 0, type(exc).__name__
        outcome = self._settle(webhook["id"], items, code)
        record = {"webhookId": webhook["id"], "url": webhook["url"], "event": webhook["event"],
                  "count": len(items), "ids": [i["targetId"] for i in items], "status": code,
                  "outcome": outcome, "error": error, "attempts": [i["attempts"] for i in items],
                  "sentAt": self.now(), "body": body.decode("ascii"), "signature": headers["Signature"]}
        with self.lock:
            self.deliveries.append(record)
        return record

    def _settle(self, webhook_id: str, items: list[dict], code: int) -> str:
        with self.lock:
            if 200 <= code < 400:
                for item in items:
                    item["attempts"] += 1
                    item["status"] = "Success"
                outcome = "success"
            elif code == 410:
                self.webhooks.pop(webhook_id, None)
                self.items = [i for i in self.items if i["webhookId"] != webhook_id]
                return "dropped"
            else:
                retry = code in RETRIED_CODES
                for item in items:
                    item["attempts"] += 1
                    if retry and item["attempts"] < self.max_attempts:
                        item["processAt"] = time.monotonic() + self.retry_interval
                    else:
                        item["status"] = "Failed"
                        item["processAt"] = None
                outcome = "retry" if retry else "failed"
            self.items = [i for i in self.items if i["status"] == "Pending"]
            return outcome

    # ------------------------------------------------------------ background worker
    def ensure_worker(self) -> None:
        """Start the background job thread (every `interval` seconds) once a webhook exists."""
        if not self.interval or self.interval <= 0:
            return
        with self.lock:
            if self._thread is not None and self._thread.is_alive():
                return
            self._stop.clear()
            self._thread = threading.Thread(target=self._loop, name="espocrm-webhooks", daemon=True)
            self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.run_job()
            except Exception:  # noqa: BLE001 - the job must survive a broken receiver
                pass

    def stop(self) -> None:
        self._stop.set()
        thread = self._thread
        if thread is not None:
            thread.join(timeout=self.timeout + 5)
        self._thread = None

    # ------------------------------------------------------------ snapshot
    def dump(self) -> dict:
        with self.lock:
            items = [dict(i, processAt=None) for i in self.items]  # monotonic times do not survive a restart
            return {"webhooks": list(self.webhooks.values()), "events": list(self.events), "items": items,
                    "number": self._number}

    def load(self, data: dict) -> None:
        with self.lock:
            self.clear()
            self.webhooks = {w["id"]: dict(w) for w in data.get("webhooks", [])}
            self.events.extend(data.get("events", []))
            self.items = [dict(i) for i in data.get("items", [])]
            self._number = int(data.get("number", 0))
        if self.webhooks:
            self.ensure_worker()

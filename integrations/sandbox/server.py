"""Serve all three simulators together (`bitbylaw sandbox`, and in-process from tests).

`Sandbox.start(ports)` runs EspoCRM, Advoware and Google Calendar simulators
in daemon threads on loopback, with HTTP/1.1 keep-alive as the real systems
(`kit.KeepAliveHandler`); `save_state`/`load_state` keep a JSON snapshot
of all three so a sandbox can be stopped and resumed.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from integrations.sandbox.advoware import create_advoware_app
from integrations.sandbox.espocrm import create_espocrm_app
from integrations.sandbox.google_calendar import create_google_calendar_app
from integrations.sandbox.kit import ServerThread

STATE_KEYS = {"espocrm": "espocrm", "advoware": "advoware", "google": "google_calendar"}


@dataclass
class Sandbox:
    host: str = "127.0.0.1"
    espocrm_port: int = 0
    advoware_port: int = 0
    google_port: int = 0
    webhook_interval: float = 2.0
    advoware_latency_ms: int = 0
    systems: tuple[str, ...] = tuple(STATE_KEYS)  # which simulators to serve (a real system needs none)
    servers: dict[str, ServerThread] = field(default_factory=dict)

    def start(self) -> "Sandbox":
        unknown = set(self.systems) - set(STATE_KEYS)
        if unknown:
            raise ValueError(f"unknown simulator(s): {', '.join(sorted(unknown))}")
        factories = {
            "espocrm": (lambda: create_espocrm_app(webhook_interval=self.webhook_interval), self.espocrm_port),
            "advoware": (lambda: create_advoware_app(latency_ms=self.advoware_latency_ms), self.advoware_port),
            "google": (create_google_calendar_app, self.google_port),
        }
        for name in self.systems:
            factory, port = factories[name]
            self.servers[name] = ServerThread(factory(), self.host, port, keep_alive=True).start()
        return self

    def url(self, name: str) -> str:
        return self.servers[name].url

    def app(self, name: str):
        return self.servers[name].server.app

    def state(self, name: str):
        """The simulator's state object (thread-safe Python access for tests and admin)."""
        return self.app(name).extensions[STATE_KEYS[name]]

    def kit(self, name: str):
        return self.app(name).extensions["sandbox"]

    def stop(self) -> None:
        for server in self.servers.values():
            server.stop()
        if "espocrm" in self.servers:
            self.state("espocrm").close()  # stops the webhook delivery thread

    def save_state(self, path: str | Path) -> None:
        data = {name: self.state(name).dump_state() for name in self.servers}
        Path(path).write_text(json.dumps(data, indent=1, ensure_ascii=False))

    def load_state(self, path: str | Path) -> bool:
        path = Path(path)
        if not path.is_file():
            return False
        data = json.loads(path.read_text())
        for name in self.servers:
            if name in data:
                self.state(name).load_state(data[name])
        return True

"""A real EspoCRM 9.2.7 for tests and benchmarks: installed from the offline archive, with the product's extension.

`RealEspoCrm().start()` unpacks the archive (`ESPOCRM_DIST`, default
`../shared/espocrm/espocrm-9.2.7-php82.tar.gz`) into a temporary folder, installs
EspoCRM into its own database (`bitbylaw_t<pid>`, dropped again by `stop()`;
never another one), serves it with `php -S` on a free port, installs the zip
that `bitbylaw espocrm build-extension` builds, creates a human user `alice`
(password login, a role with full CBeteiligte and CAdresse access) and runs the product's
`bitbylaw espocrm setup` logic, which creates the integration API user.

Nothing outlives its owner: `start()` first starts a reaper process that waits
for the owner to close a pipe, then stops the server, drops the database and
removes the folder. `stop()` closes the pipe; so does the kernel when the
owner dies without stopping (a test run killed by SIGTERM or SIGKILL — once
seen leaving `php -S` workers behind, holding their port and database).

`prerequisites()` says why the tier cannot run here (None when it can):
`make test` deselects the tier with one printed line in that case; with
`BITBYLAW_REAL_ESPOCRM=require` (CI) a missing prerequisite fails instead.
"""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

from bitbylaw_tasks.espocrm import extension
from bitbylaw_tasks.espocrm.provision import run_setup
from integrations.espocrm import EspoCrmClient
from integrations.espocrm_admin import EspoCrmAdminClient

REPO = Path(__file__).resolve().parents[2]
DEFAULT_DIST = REPO.parent / "shared" / "espocrm" / "espocrm-9.2.7-php82.tar.gz"
DIST = Path(os.environ.get("ESPOCRM_DIST") or DEFAULT_DIST)
SETUP_SH = DIST.parent / "setup.sh"
DB_HOST = os.environ.get("ESPOCRM_TEST_DB_HOST", "127.0.0.1")
DB_PORT = int(os.environ.get("ESPOCRM_TEST_DB_PORT", "3306"))
ADMIN = ("admin", "Admin-Passw0rd")
ALICE = ("alice", "Alice-Passw0rd-1")
REQUIRED = os.environ.get("BITBYLAW_REAL_ESPOCRM", "").lower() == "require"
HOW_TO_ENABLE = ("install php8.2-cli php8.2-mysql php8.2-{zip,gd,mbstring,xml,curl,intl,bcmath} and a "
                 "MariaDB/MySQL server at ESPOCRM_TEST_DB_HOST:PORT (root, no password), and the archive at "
                 "ESPOCRM_DIST (README: 'Connecting a real EspoCRM')")


def prerequisites() -> str | None:
    """Why the real tier cannot run on this machine, or None."""
    if not DIST.is_file() or not SETUP_SH.is_file():
        return f"no EspoCRM archive at {DIST}"
    if shutil.which("php") is None:
        return "no php on PATH"
    modules = subprocess.run(["php", "-m"], capture_output=True, text=True).stdout.lower()
    missing = [m for m in ("pdo_mysql", "mbstring", "zip", "curl") if m not in modules]
    if missing:
        return f"php lacks {', '.join(missing)}"
    try:
        socket.create_connection((DB_HOST, DB_PORT), timeout=2).close()
    except OSError:
        return f"no MariaDB/MySQL at {DB_HOST}:{DB_PORT}"
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RealEspoCrm:
    """One real EspoCRM for a test session (see the module docstring)."""

    def __init__(self):
        self.port = _free_port()
        self.db = f"bitbylaw_t{os.getpid()}"
        self.dir = Path(tempfile.mkdtemp(prefix="bitbylaw-espocrm-"))
        self.url = f"http://127.0.0.1:{self.port}"
        self.api_key = ""          # the integration user's, set by the product's setup
        self.integration_user_id = ""
        self.alice_id = ""
        self._reaper: subprocess.Popen | None = None

    # ------------------------------------------------------------ lifecycle
    def start_reaper(self) -> None:
        """Start the process that tears this EspoCRM down once this process closes the pipe or dies."""
        self._reaper = subprocess.Popen([sys.executable, "-m", __name__, "reap", str(self.dir), self.db],
                                        stdin=subprocess.PIPE, start_new_session=True, cwd=REPO)

    def start(self) -> "RealEspoCrm":
        self.start_reaper()
        env = {**os.environ, "SKIP_APT": "1", "DB_HOST": DB_HOST, "DB_PORT": str(DB_PORT),
               "ADMIN_USER": ADMIN[0], "ADMIN_PASS": ADMIN[1], "SERVER_WORKERS": "4"}
        self._run(["bash", str(SETUP_SH), str(DIST), str(self.port), self.db, str(self.dir)], env=env)
        zip_path = extension.build(self.dir / "dist")
        out = self._run(["php", "command.php", "extension", f"--file={zip_path}"], cwd=self.dir)
        if "is installed" not in out:
            raise RuntimeError(f"extension install failed: {out[-500:]}")
        self._run(["php", "command.php", "clear-cache"], cwd=self.dir)
        self._wait_for_scope()
        self.alice_id = self._create_alice()
        self.configure(public_url="http://127.0.0.1:9")  # webhooks are re-pointed by the tests that need them
        return self

    @staticmethod
    def _settling(write, attempts: int = 20):
        """`write()`, again while a web worker still refuses the new entity (metadata of before the install)."""
        for attempt in range(attempts):
            try:
                return write()
            except Exception as exc:  # BadRequest, or setup's SetupError naming it
                if "is not allowed" not in str(exc) or attempt == attempts - 1:
                    raise
                time.sleep(0.5)

    def configure(self, public_url: str) -> dict:
        """Run the product's setup (idempotent) with the shim at `public_url`; returns the webhook secrets."""
        result = self._settling(lambda: run_setup(
            self.admin(), lambda key: EspoCrmClient(self.url, key), base_url=self.url, public_url=public_url,
            api_key=self.api_key, api_user="bitbylaw-sync"))
        self.api_key = self.api_key or result.new_api_key
        self.integration_user_id = result.user_id
        return result.webhook_secrets

    def stop_server(self) -> None:
        """Stop the web server only (the database and files stay): EspoCRM is down."""
        subprocess.run(["bash", str(self.dir / "stop.sh")], capture_output=True)

    def start_server(self) -> None:
        """Start the installed EspoCRM again (setup.sh only restarts an installed folder)."""
        env = {**os.environ, "SKIP_APT": "1", "DB_HOST": DB_HOST, "DB_PORT": str(DB_PORT),
               "ADMIN_USER": ADMIN[0], "ADMIN_PASS": ADMIN[1], "SERVER_WORKERS": "4"}
        self._run(["bash", str(SETUP_SH), str(DIST), str(self.port), self.db, str(self.dir)], env=env)

    def stop(self) -> None:
        """Tear down through the reaper (the one path, also when this process dies), then once more here in
        case no reaper ran (idempotent)."""
        reaper, self._reaper = self._reaper, None
        if reaper is not None:
            reaper.stdin.close()
            try:
                reaper.wait(timeout=120)
            except subprocess.TimeoutExpired:
                reaper.kill()
        teardown(self.dir, self.db)

    # ------------------------------------------------------------ access
    def admin(self) -> EspoCrmAdminClient:
        return EspoCrmAdminClient(self.url, *ADMIN)

    def client(self) -> EspoCrmClient:
        """The product's client as the integration user."""
        return EspoCrmClient(self.url, self.api_key)

    def user_session(self) -> requests.Session:
        """`alice`, an ordinary user logging in with her password (her writes are user edits)."""
        session = requests.Session()
        session.auth = ALICE
        return session

    def run_job(self, job: str = "ProcessWebhookQueue") -> str:
        """Run one of EspoCRM's jobs now (what cron would do within a minute)."""
        return self._run(["php", "command.php", "run-job", job], cwd=self.dir)

    def php(self, *args: str) -> str:
        return self._run(["php", *args], cwd=self.dir)

    def sql(self, statement: str) -> str:
        """Run SQL in this EspoCRM's own database (seeding, inspecting)."""
        return self._sql(statement, database=self.db)

    # ------------------------------------------------------------ internals
    def _wait_for_scope(self, timeout: float = 60.0, settled: int = 8) -> None:
        """The web workers may still serve the metadata from before the install for a while (seen under load:
        one worker knew CBeteiligte, the next refused a role for it): wait until `settled` reads in a row,
        spread over the workers, show the entity."""
        deadline = time.monotonic() + timeout
        seen = 0
        while time.monotonic() < deadline:
            scope = self.admin().metadata(f"scopes.{extension.ENTITY}") or {}
            seen = seen + 1 if scope.get("module") == extension.MODULE and scope.get("acl") else 0
            if seen >= settled:
                return
            time.sleep(0.25)
        raise RuntimeError("the extension's entity did not appear in the API's metadata")

    def _create_alice(self) -> str:
        admin = self.admin()
        role = self._settling(lambda: admin.create("Role", {"name": "Kanzlei user", "data": {
            extension.ENTITY: {"create": "yes", "read": "all", "edit": "all", "delete": "all", "stream": "all"},
            extension.ADRESSE: {"create": "yes", "read": "all", "edit": "all", "delete": "all"}},
            "fieldData": {}}))
        user = admin.create("User", {"userName": ALICE[0], "lastName": "Alice", "firstName": "Anna",
                                     "type": "regular", "isActive": True, "password": ALICE[1],
                                     "passwordConfirm": ALICE[1], "rolesIds": [role["id"]]})
        return user["id"]

    @staticmethod
    def _sql(statement: str, database: str = "") -> str:
        """Run one SQL statement (read from stdin: a bulk insert is larger than an argument may be); prints
        each result row's values tab-separated."""
        code = ("$pdo = new PDO('mysql:host=' . getenv('H') . ';port=' . getenv('P') . (getenv('D') ? ';dbname=' "
                ". getenv('D') : ''), 'root', '', [PDO::ATTR_ERRMODE => PDO::ERRMODE_EXCEPTION]);"
                "$s = $pdo->query(stream_get_contents(STDIN)); if ($s && $s->columnCount()) { "
                "foreach ($s->fetchAll(PDO::FETCH_NUM) as $r) { echo implode(\"\\t\", $r), \"\\n\"; } }")
        env = {**os.environ, "H": DB_HOST, "P": str(DB_PORT), "D": database}
        return RealEspoCrm._run(["php", "-r", code], env=env, input=statement)

    @staticmethod
    def _run(argv: list[str], **kwargs) -> str:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=300, **kwargs)
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(argv[:3])} failed ({done.returncode}): {done.stderr[-800:] or done.stdout[-800:]}")
        return done.stdout


def teardown(directory: Path, db: str) -> None:
    """Stop the server (its `stop.sh` kills the PHP workers, then the parent), drop the database, remove the
    folder. Idempotent: what is already gone is skipped."""
    stop = directory / "stop.sh"
    if stop.is_file():
        subprocess.run(["bash", str(stop)], capture_output=True)
    shutil.rmtree(directory, ignore_errors=True)
    try:
        RealEspoCrm._sql(f"DROP DATABASE IF EXISTS `{db}`")
    except (RuntimeError, OSError, subprocess.TimeoutExpired):
        pass  # no database server reachable: nothing of ours can be left there either


def _reap(directory: str, db: str) -> None:
    """The reaper: block until the owner closes stdin (its `stop()`, or its death), then tear down."""
    sys.stdin.buffer.read()
    teardown(Path(directory), db)


if __name__ == "__main__" and sys.argv[1:2] == ["reap"]:
    _reap(*sys.argv[2:4])

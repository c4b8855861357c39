"""`bitbylaw proxy keys create|list|revoke`: the secret is printed once and works, Redis holds only its hash,
a revoked key is refused on its next call; operator mistakes are one line and a non-zero exit."""
from __future__ import annotations

import json
import re

import requests

from bitbylaw_tasks import cli
from bitbylaw_tasks.proxy import keys
from tests.proxy_helpers import API, bearer, serve_web


def _create(capsys, *argv) -> tuple[int, str, str]:
    code = cli.main(["proxy", "keys", "create", *argv])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_create_list_revoke(sandbox, lock_redis, capsys):
    code, out, _ = _create(capsys, "Assistant", "--scope", "read", "--allow", "/advonet/Mitarbeiter/", "Beteiligte")
    assert code == 0
    secret = re.search(r"secret \(shown once, store it now\): (bbp_\S+)", out).group(1)
    doc = json.loads(out[:out.index("secret (")])
    assert doc["name"] == "assistant" and doc["scope"] == "read" and doc["allow"] == ["Mitarbeiter", "Beteiligte"]
    stored = json.dumps({k.decode(): {f.decode(): v.decode() for f, v in lock_redis.hgetall(k).items()}
                         for k in lock_redis.scan_iter("proxy:key*") if lock_redis.type(k) == b"hash"})
    assert secret not in stored and secret.split("_")[2] not in stored  # only the hash is kept

    with serve_web() as web:
        assert requests.get(f"{web}{API}/Mitarbeiter", headers=bearer(secret), timeout=10).status_code == 200
        assert cli.main(["proxy", "keys", "list"]) == 0
        listed = json.loads(capsys.readouterr().out)
        assert [k["name"] for k in listed] == ["assistant"] and secret not in json.dumps(listed)
        assert cli.main(["proxy", "keys", "revoke", "assistant"]) == 0
        assert "revoked assistant" in capsys.readouterr().out
        assert requests.get(f"{web}{API}/Mitarbeiter", headers=bearer(secret), timeout=10).status_code == 401
    assert cli.main(["proxy", "keys", "list"]) == 0 and json.loads(capsys.readouterr().out) == []
    assert cli.main(["proxy", "keys", "list", "--all"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["revoked_at"] is not None
    # the name is free again; the old secret stays dead
    code, out, _ = _create(capsys, "assistant", "--scope", "write", "--allow", "Termine")
    assert code == 0 and keys.lookup(lock_redis, secret) is None


def test_operator_mistakes_are_one_line(sandbox, lock_redis, capsys):
    assert _create(capsys, "dup", "--scope", "read", "--allow", "Termine")[0] == 0
    for argv, needle in [(("dup", "--scope", "read", "--allow", "Termine"), "exists; revoke it first"),
                         (("bad name!", "--scope", "read", "--allow", "Termine"), "key name"),
                         (("x", "--scope", "read", "--allow", "../Token"), "not a path prefix"),
                         (("y", "--scope", "read", "--allow", "Beteiligte//1"), "not a path prefix")]:
        code, out, err = _create(capsys, *argv)
        assert code == 2 and needle in err and len(err.strip().splitlines()) == 1 and "bbp_" not in out
    assert cli.main(["proxy", "keys", "revoke", "nobody"]) == 1
    assert "no active key named 'nobody'" in capsys.readouterr().err
    assert cli.main(["proxy", "audit", "--since", "yesterday-ish"]) == 2
    assert "--since" in capsys.readouterr().err


def test_parse_since():
    import pytest

    from bitbylaw_tasks.proxy.audit import parse_since

    now = 1_800_000_000.0
    assert parse_since("90s", now) == now - 90
    assert parse_since("30m", now) == now - 1800
    assert parse_since("2 h", now) == now - 7200
    assert parse_since("7D", now) == now - 7 * 86400
    assert parse_since("2026-12-01T00:00:00Z", now) == parse_since("2026-12-01T01:00:00+01:00", now) == 1796083200.0
    assert parse_since("2026-12-01", now) == 1796083200.0  # UTC unless it says otherwise
    for bad in ("", "soon", "-5m", "5w"):
        with pytest.raises(ValueError):
            parse_since(bad, now)

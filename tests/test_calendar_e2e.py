"""Calendar sync end to end: the real worker runs `calendar.sync_employee` against the Advoware and Google
simulators with a real Redis (DB 2 for the state). Every SPEC §6 policy, state loss, 410, 412, DST, two
employees in parallel, idempotence counted on the simulators, the empty-side guard, and a seeded random run.
"""
from __future__ import annotations

import random
from datetime import datetime, timedelta

import pytest
import redis

from bitbylaw_tasks.calendar import mapping as m
from bitbylaw_tasks.calendar import service
from bitbylaw_tasks.calendar.state import CalendarState
from bitbylaw_tasks.celery_app import app
from bitbylaw_tasks.settings import get_settings
from conftest import CALENDAR_DB

TODAY = datetime.now(m.TZ).date()


def day(offset: int) -> str:
    return (TODAY + timedelta(days=offset)).isoformat()


class World:
    def __init__(self, sandbox, client: redis.Redis):
        self.sandbox = sandbox
        self.redis = client
        self.advo = sandbox.state("advoware")
        self.google = sandbox.state("google")
        self.calendars: dict[str, str] = {}

    def employee(self, kuerzel: str) -> None:
        self.advo.add_mitarbeiter(kuerzel, f"Mitarbeiter {kuerzel}", f"{kuerzel.lower()}@kanzlei.example")

    def termin(self, kuerzel="AB", offset=3, **kw) -> dict:
        fields = {"kuerzel": kuerzel, "art": "Termin", "datum": day(offset), "uhrzeitVon": "10:00",
                  "uhrzeitBis": "11:00", "text": f"Besprechung {offset}", "ort": "Kanzlei"}
        fields.update(kw)
        return self.advo.add_termin(**fields)

    def calendar(self, kuerzel="AB") -> str:
        """The employee's calendar id as the state knows it (or knew it, before a test flushed the state)."""
        found = CalendarState(self.redis, kuerzel).meta().calendar_id
        if found:
            self.calendars[kuerzel] = found
        return found or self.calendars[kuerzel]

    def events(self, kuerzel="AB") -> list[dict]:
        return self.google.events_of(self.calendar(kuerzel))

    def event(self, frnr: int, kuerzel="AB") -> dict:
        found = [e for e in self.events(kuerzel) if m.event_frnr(e) == frnr]
        assert len(found) == 1, f"{len(found)} live events for frNr {frnr}"
        return found[0]

    def termine(self, kuerzel="AB") -> list[dict]:
        return self.advo.list_termine_api(kuerzel, day(-30), day(365))

    def writes(self) -> dict[str, int]:
        out = {}
        for name in ("advoware", "google"):
            for key, n in self.sandbox.kit(name).calls().items():
                if not key.startswith("GET") and "/Token" not in key:
                    out[f"{name} {key}"] = n
        return out

    def reset_calls(self) -> None:
        for name in ("advoware", "google"):
            self.sandbox.kit(name).reset_calls()

    def assert_in_sync(self, kuerzel="AB") -> None:
        """Every Termin has exactly one live, stamped event with the same content, and no event is extra."""
        termine = {t["frNr"]: t for t in self.termine(kuerzel)}
        events = self.events(kuerzel)
        stamped = [m.event_frnr(e) for e in events]
        assert sorted(stamped) == sorted(termine), "events and Termine differ"
        for event in events:
            t = termine[m.event_frnr(event)]
            assert m.from_event(event) == m.from_termin(t), f"content differs for frNr {t['frNr']}"


def sync(kuerzel="AB", force=False, timeout=60) -> dict:
    return app.send_task("calendar.sync_employee", (kuerzel, force)).get(timeout=timeout)


@pytest.fixture
def world(sandbox, celery_worker, redis_server) -> World:
    client = redis.Redis.from_url(redis_server.url(CALENDAR_DB))
    client.flushdb()
    w = World(sandbox, client)
    w.employee("AB")
    return w


def test_advoware_termine_appear_in_a_new_calendar_and_a_second_run_writes_nothing(world):
    t = world.termin(offset=5)
    f = world.termin(offset=9, art="Frist", ganztaegig=True, text="Berufungsbegründung")
    w = world.termin(offset=12, art="Wiedervorlage", ganztaegig=True, datumBis=day(13), text="Akte prüfen")
    result = sync()
    assert result["path"] == "synced" and result["actions"] == {"insert_event": 3} and result["full"]
    cal = world.google.get_calendar(world.calendar())
    assert cal["summary"] == "Advoware AB" and "bitbylaw:kuerzel=AB" in cal["description"]
    assert world.event(t["frNr"])["id"] == m.event_id_for(t["frNr"])
    assert world.event(f["frNr"])["summary"] == "Frist: Berufungsbegründung"
    assert world.event(f["frNr"])["start"] == {"date": day(9)} and world.event(f["frNr"])["end"] == {"date": day(10)}
    assert world.event(w["frNr"])["end"] == {"date": day(14)}
    world.assert_in_sync()
    for _ in range(2):  # idempotence: our own writes come back once, then nothing
        world.reset_calls()
        assert sync()["path"] == "no_change"
        assert world.writes() == {}
    calls = world.sandbox.kit("google").calls()
    assert calls == {"GET /calendar/v3/calendars/<calendar_id>/events": 1}


def test_advoware_update_and_delete_reach_google(world):
    t = world.termin(offset=5)
    gone = world.termin(offset=6)
    sync()
    world.advo.human_update_termin(t["frNr"], text="Verlegt", datum=day(7), uhrzeitVon="14:30", uhrzeitBis="15:00")
    world.advo.human_delete_termin(gone["frNr"])
    result = sync()
    assert result["actions"] == {"update_event": 1, "delete_event": 1}
    event = world.event(t["frNr"])
    assert event["summary"] == "Verlegt" and event["start"]["dateTime"].startswith(f"{day(7)}T14:30:00")
    world.assert_in_sync()
    assert sync()["path"] == "no_change"


def test_google_create_update_delete_reach_advoware(world):
    sync()
    cal = world.calendar()
    made = world.google.human_insert(cal, {"summary": "Mandant Müller", "location": "Büro 2",
                                           "start": {"dateTime": f"{day(4)}T09:00:00+01:00"},
                                           "end": {"dateTime": f"{day(4)}T09:45:00+01:00"}})
    result = sync()
    assert result["actions"] == {"create_termin": 1}
    (termin,) = world.termine()
    assert (termin["text"], termin["ort"], termin["art"], termin["uhrzeitVon"]) == ("Mandant Müller", "Büro 2",
                                                                                    "Termin", "09:00:00")
    assert m.event_frnr(world.google.get_event(cal, made["id"])) == termin["frNr"]  # stamped, same event
    world.google.human_update(cal, made["id"], {"summary": "Mandant Meier", "description": "Unterlagen mitbringen"})
    assert sync()["actions"] == {"update_termin": 1}
    after = world.advo.get_termin(termin["frNr"])
    assert (after["text"], after["notiz"]) == ("Mandant Meier", "Unterlagen mitbringen")
    world.assert_in_sync()
    # deleted in Google: a Termin is re-created by default (CALENDAR_DELETE_TERMINE=false)
    world.google.human_delete(cal, made["id"])
    assert sync()["actions"] == {"update_event": 1}
    assert world.google.get_event(cal, made["id"])["status"] == "confirmed"
    world.assert_in_sync()
    assert sync()["path"] == "no_change"


def test_google_deletion_of_a_termin_deletes_it_when_the_setting_allows(world, sandbox):
    from bitbylaw_tasks.calendar.context import context_for

    t = world.termin(offset=5)
    f = world.termin(offset=6, art="Frist", ganztaegig=True)
    sync()
    cal = world.calendar()
    world.google.human_delete(cal, m.event_id_for(t["frNr"]))
    world.google.human_delete(cal, m.event_id_for(f["frNr"]))
    settings = get_settings().replace(calendar_delete_termine=True)
    result = service.sync_employee(context_for(settings, "AB"))
    assert result.actions == {"delete_termin": 1, "update_event": 1}
    assert world.advo.get_termin(t["frNr"]) is None and world.advo.get_termin(f["frNr"]) is not None
    world.assert_in_sync()


def test_conflict_advoware_wins(world):
    t = world.termin(offset=5)
    sync()
    world.advo.human_update_termin(t["frNr"], text="Advoware-Text")
    world.google.human_update(world.calendar(), m.event_id_for(t["frNr"]), {"summary": "Google-Text",
                                                                             "location": "Google-Ort"})
    assert sync()["actions"] == {"update_event": 1}
    assert world.event(t["frNr"])["summary"] == "Advoware-Text" and world.event(t["frNr"])["location"] == "Kanzlei"
    assert world.advo.get_termin(t["frNr"])["text"] == "Advoware-Text"
    world.assert_in_sync()


def test_frist_deleted_in_google_comes_back(world):
    f = world.termin(offset=8, art="Frist", ganztaegig=True, text="Klageerwiderung")
    sync()
    event_id = m.event_id_for(f["frNr"])
    world.google.human_delete(world.calendar(), event_id)
    assert sync()["actions"] == {"update_event": 1}
    back = world.google.get_event(world.calendar(), event_id)
    assert back["status"] == "confirmed" and back["summary"] == "Frist: Klageerwiderung"
    assert world.advo.get_termin(f["frNr"]) is not None
    world.assert_in_sync()


def test_state_lost_rebuilds_the_mapping_from_extended_properties_with_zero_duplicates(world):
    for offset in range(2, 8):
        world.termin(offset=offset)
    world.termin(offset=9, art="Frist", ganztaegig=True)
    sync()
    calendars_before = world.google.calendar_ids()
    items_before = CalendarState(world.redis, "AB").items()
    world.redis.flushdb()  # Redis DB 2 lost
    world.reset_calls()
    result = sync()
    assert result["path"] == "no_change" and result["full"] and result["actions"] == {"record": 7}
    assert world.writes() == {}  # no duplicate event, no duplicate calendar
    assert world.google.calendar_ids() == calendars_before
    assert CalendarState(world.redis, "AB").items() == items_before
    assert len(world.events()) == 7
    world.assert_in_sync()


def test_410_during_incremental_sync_falls_back_to_a_full_resync_without_duplicates(world):
    kept = world.termin(offset=3)
    deleted_in_google = world.termin(offset=4, art="Frist", ganztaegig=True)
    world.termin(offset=5)
    sync()
    cal = world.calendar()
    world.google.human_delete(cal, m.event_id_for(deleted_in_google["frNr"]))  # only a full listing's absence shows it
    world.google.human_update(cal, m.event_id_for(kept["frNr"]), {"location": "Saal 3"})
    world.termin(offset=6, text="neu")
    world.google.expire_sync_tokens(cal)
    result = sync()
    assert result["full"] and result["actions"] == {"update_event": 1, "update_termin": 1, "insert_event": 1}
    assert world.advo.get_termin(kept["frNr"])["ort"] == "Saal 3"
    assert len(world.events()) == 4
    world.assert_in_sync()
    world.reset_calls()
    sync()
    assert sync()["path"] == "no_change" and world.writes() == {}


def test_412_rereads_and_redecides(world):
    from bitbylaw_tasks.calendar.context import context_for

    t = world.termin(offset=5)
    sync()
    world.advo.human_update_termin(t["frNr"], text="geändert")
    put = "/calendar/v3/calendars/*/events/*"
    world.sandbox.kit("google").add_fault(status=412, method="PUT", path=put, times=1)
    result = service.sync_employee(context_for(get_settings(), "AB"))
    assert result.rounds == 2 and result.actions == {"update_event": 1}
    world.assert_in_sync()
    world.advo.human_update_termin(t["frNr"], text="nochmal")
    world.sandbox.kit("google").add_fault(status=412, method="PUT", path=put, times=10)
    with pytest.raises(service.StillChanging):
        service.sync_employee(context_for(get_settings(), "AB"))
    world.sandbox.kit("google").clear_faults()


def _dst_days() -> list[str]:
    out = []
    for n in range(1, 366):
        d = TODAY + timedelta(days=n)
        noon_before = datetime.combine(d - timedelta(days=1), datetime.min.time().replace(hour=12), m.TZ)
        noon = datetime.combine(d, datetime.min.time().replace(hour=12), m.TZ)
        if noon.utcoffset() != noon_before.utcoffset():
            out.append(d.isoformat())
    return out


def test_dst_boundaries_and_all_day_events(world):
    spring, autumn = sorted(_dst_days(), key=lambda d: d[5:7] != "03")[:2]
    gap = world.termin(datum=spring, uhrzeitVon="02:30", uhrzeitBis="04:00", text="Frühjahr")
    fall = world.termin(datum=autumn, uhrzeitVon="01:30", uhrzeitBis="03:30", text="Herbst")
    across = world.termin(datum=(datetime.fromisoformat(spring) - timedelta(days=1)).date().isoformat(),
                          datumBis=spring, ganztaegig=True, art="Frist", text="über die Umstellung")
    sync()
    assert world.event(gap["frNr"])["start"]["dateTime"] == f"{spring}T03:30:00+02:00"
    assert world.event(gap["frNr"])["end"]["dateTime"] == f"{spring}T04:00:00+02:00"
    assert world.event(fall["frNr"])["start"]["dateTime"] == f"{autumn}T01:30:00+02:00"
    assert world.event(fall["frNr"])["end"]["dateTime"] == f"{autumn}T03:30:00+01:00"
    next_day = (datetime.fromisoformat(spring) + timedelta(days=1)).date().isoformat()
    assert world.event(across["frNr"])["end"] == {"date": next_day}
    # a Google event given in UTC across the spring switch lands in Advoware as Berlin wall time
    made = world.google.human_insert(world.calendar(), {
        "summary": "UTC", "start": {"dateTime": f"{spring}T00:30:00Z"}, "end": {"dateTime": f"{spring}T01:30:00Z"}})
    allday = world.google.human_insert(world.calendar(), {
        "summary": "Urlaub", "start": {"date": autumn}, "end": {"date": day(366)}})  # ends outside: still synced
    sync()
    termine = {t["text"]: t for t in world.termine()}
    assert (termine["UTC"]["uhrzeitVon"], termine["UTC"]["uhrzeitBis"]) == ("01:30:00", "03:30:00")
    assert termine["Urlaub"]["ganztaegig"] and termine["Urlaub"]["datumBis"].startswith(day(365))
    assert m.event_frnr(world.google.get_event(world.calendar(), made["id"])) == termine["UTC"]["frNr"]
    assert m.event_frnr(world.google.get_event(world.calendar(), allday["id"])) == termine["Urlaub"]["frNr"]
    world.assert_in_sync()
    world.reset_calls()
    sync()
    assert sync()["path"] == "no_change" and world.writes() == {}


def test_two_employees_in_parallel(world):
    world.employee("CD")
    for offset in range(2, 6):
        world.termin("AB", offset=offset)
        world.termin("CD", offset=offset, art="Frist", ganztaegig=True)
    assert app.send_task("calendar.sync_all").get(timeout=30) == {"employees": 2, "queued": 2}

    def both_synced():
        return all(CalendarState(world.redis, k).meta().synced_at for k in ("AB", "CD"))

    from beteiligte_helpers import wait_for

    wait_for(both_synced, timeout=30, message="both employees synced")
    assert world.calendar("AB") != world.calendar("CD")
    world.assert_in_sync("AB")
    world.assert_in_sync("CD")
    # the same employee twice at once: the lock serialises, nothing is duplicated
    world.termin("AB", offset=7)
    results = [app.send_task("calendar.sync_employee", ("AB",)) for _ in range(3)]
    paths = [r.get(timeout=30)["path"] for r in results]
    assert "synced" in paths
    world.assert_in_sync("AB")
    assert len(world.google.calendar_ids()) == 3  # primary + one per employee


def test_empty_side_guard_stops_instead_of_mass_deleting(world):
    termine = [world.termin(offset=o) for o in range(2, 8)]
    sync()
    for t in termine:
        world.advo.human_delete_termin(t["frNr"])
    world.reset_calls()
    with pytest.raises(service.EmptySideGuard):
        sync()
    assert world.writes() == {} and len(world.events()) == 6
    assert CalendarState(world.redis, "AB").summary()["items"] == 6
    result = sync(force=True)  # the operator confirmed: the deletions go through
    assert result["actions"] == {"delete_event": 6} and world.events() == []


def test_calendar_deleted_in_google_is_made_again_and_filled(world):
    world.termin(offset=3)
    world.termin(offset=4)
    sync()
    world.google.delete_calendar(world.calendar())
    result = sync()
    assert result["actions"] == {"insert_event": 2}
    world.assert_in_sync()


def _random_edit(world: World, rnd: random.Random, cal: str, tag: str) -> None:
    live, termine = world.events(), world.termine()
    op = rnd.choice(["a_new", "a_edit", "a_del", "g_new", "g_edit", "g_del", "g_move", "chaos"])
    if op == "a_new":
        world.termin(offset=rnd.randint(-5, 90), art=rnd.choice(["Termin", "Frist"]), text=f"a {tag}")
    elif op == "a_edit" and termine:
        world.advo.human_update_termin(rnd.choice(termine)["frNr"], text=f"a-edit {tag}",
                                       datum=day(rnd.randint(0, 50)))
    elif op == "a_del" and termine:
        world.advo.human_delete_termin(rnd.choice(termine)["frNr"])
    elif op == "g_new":
        start = f"{day(rnd.randint(0, 40))}T{rnd.randint(7, 18):02d}:15:00+01:00"
        world.google.human_insert(cal, {"summary": f"g {tag}", "start": {"dateTime": start},
                                        "end": {"dateTime": start}})
    elif op == "g_edit" and live:
        world.google.human_update(cal, rnd.choice(live)["id"], {"summary": f"g-edit {tag}", "location": "Raum 1"})
    elif op == "g_move" and live:
        world.google.human_update(cal, rnd.choice(live)["id"], {
            "start": {"date": day(20), "dateTime": None, "timeZone": None},
            "end": {"date": day(22), "dateTime": None, "timeZone": None}})
    elif op == "g_del" and live:
        world.google.human_delete(cal, rnd.choice(live)["id"])
    elif op == "chaos":
        if rnd.random() < 0.5:
            world.google.expire_sync_tokens(cal)  # the next incremental listing answers 410
        else:
            world.redis.flushdb()  # the status store is lost


@pytest.mark.parametrize("seed", [20240510, 7, 1312])
def test_random_edits_on_both_sides_converge(world, seed):
    """Seeded random edits on both sides, some while a sync runs, with lost state and expired tokens."""
    rnd = random.Random(seed)
    for n in range(8):
        world.termin(offset=rnd.randint(-10, 60), art=rnd.choice(["Termin", "Frist", "Wiedervorlage"]),
                     text=f"start {n}")
    sync()
    cal = world.calendar()
    for round_no in range(8):
        running = app.send_task("calendar.sync_employee", ("AB",)) if round_no % 2 else None
        for n in range(rnd.randint(2, 6)):
            _random_edit(world, rnd, cal, f"{round_no}.{n}")
        if running is not None:
            running.get(timeout=60)
        sync()
    sync()
    world.assert_in_sync()
    world.reset_calls()
    assert sync()["path"] == "no_change" and world.writes() == {}


# --- the operator commands ---
def _cli(argv: list[str]) -> int:
    import argparse

    from bitbylaw_tasks.calendar.cli import register

    parser = argparse.ArgumentParser(prog="bitbylaw")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.func(args, get_settings())


def test_cli_audit_is_read_only_and_shows_differences(world, capsys):
    import json

    t = world.termin(offset=5)
    world.termin(offset=6)
    sync()
    world.advo.human_update_termin(t["frNr"], text="nur in Advoware geändert")
    new = world.termin(offset=7)
    world.google.human_insert(world.calendar(), {"summary": "nur Google", "start": {"date": day(8)},
                                                 "end": {"date": day(9)}})
    state_before = CalendarState(world.redis, "AB").items()
    world.reset_calls()
    assert _cli(["calendar", "audit", "AB"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["equal"] == 1 and [d["frNr"] for d in report["differ"]] == [t["frNr"]]
    assert report["differ"][0]["fields"] == {"text": ["nur in Advoware geändert", "Besprechung 5"]}
    assert report["only_advoware"] == [new["frNr"]] and len(report["only_google_unstamped"]) == 1
    assert world.writes() == {} and CalendarState(world.redis, "AB").items() == state_before
    sync()
    assert _cli(["calendar", "audit", "AB"]) == 0
    world.assert_in_sync()


def test_cli_sync_now_clear_and_delete_calendars(world, capsys, lock_redis):
    world.termin(offset=5)
    assert _cli(["calendar", "sync", "AB", "--now"]) == 0
    assert len(world.events()) == 1
    lock_redis.set("sync_lock:calendar:AB", "stuck")
    assert _cli(["calendar", "sync", "AB", "--now"]) == 1  # busy
    assert _cli(["calendar", "clear", "AB"]) == 0
    assert not lock_redis.exists("sync_lock:calendar:AB")
    assert CalendarState(world.redis, "AB").meta().calendar_id is None
    assert _cli(["calendar", "sync", "AB", "--now"]) == 0  # found again by its marker, nothing duplicated
    assert len(world.google.calendar_ids()) == 2 and len(world.events()) == 1
    assert _cli(["calendar", "status"]) == 0
    assert _cli(["calendar", "delete-calendars"]) == 0
    assert world.google.calendar_ids() == [world.google.calendar_ids()[0]]  # only the primary is left
    assert CalendarState(world.redis, "AB").meta().calendar_id is None


def test_advoware_edit_during_a_slow_sync_is_not_overwritten(world, monkeypatch):
    """Advoware has no If-Match: a Termin edited after our listing is noticed by a fresh listing before we
    write it, and Advoware's newer version wins instead of being overwritten by the older Google edit."""
    from bitbylaw_tasks.calendar.context import context_for

    t = world.termin(offset=5)
    sync()
    world.google.human_update(world.calendar(), m.event_id_for(t["frNr"]), {"summary": "Google-Änderung"})
    monkeypatch.setattr(service, "ADVOWARE_FRESH_FOR", -1.0)  # as if the sync had been slow
    ctx = context_for(get_settings(), "AB")
    listed = ctx.advoware.list_termine
    edits = iter([lambda: world.advo.human_update_termin(t["frNr"], text="Advoware-Änderung")])

    def list_then_user_edits(*args):
        result = listed(*args)
        next(edits, lambda: None)()  # a user edits the Termin right after our first listing
        return result

    monkeypatch.setattr(ctx.advoware, "list_termine", list_then_user_edits)
    result = service.sync_employee(ctx)
    assert result.rounds == 2 and result.actions == {"update_event": 1}
    assert world.advo.get_termin(t["frNr"])["text"] == "Advoware-Änderung"
    world.assert_in_sync()


def test_frist_whose_deleted_event_was_purged_comes_back_as_a_new_event(world):
    """Google: deleted events "eventually disappear"; the restoring PUT then answers 404 and we insert."""
    f = world.termin(offset=8, art="Frist", ganztaegig=True)
    sync()
    cal, event_id = world.calendar(), m.event_id_for(f["frNr"])
    world.google.human_delete(cal, event_id)
    with world.google.lock:
        del world.google._calendars[cal]["events"][event_id]  # purged (the simulator never does this itself)
    world.google.expire_sync_tokens(cal)  # the purged event is in no incremental listing any more
    result = sync()
    assert result["full"] and result["actions"] == {"update_event": 1}
    assert world.event(f["frNr"])["id"] == event_id
    world.assert_in_sync()


# --- issue 19 ---
def _raw_termin(world: World, frnr: int, **fields) -> None:
    """Give a stored Termin values the simulator's API refuses but a real Advoware might send."""
    with world.advo.lock:
        world.advo.termine[frnr].update(fields)


def test_one_bad_termin_among_many_does_not_stop_the_employees_sync(world, lock_redis, capsys, caplog):
    import json

    from bitbylaw_tasks.metrics import SKIPPED_KEY

    good = [world.termin(offset=o) for o in range(2, 8)]
    bad = world.termin(offset=9, text="kaputt")
    _raw_termin(world, bad["frNr"], uhrzeitVon="25:00:00")
    with caplog.at_level("WARNING", logger="bitbylaw_tasks.calendar.service"):
        result = sync()
    assert result["actions"] == {"insert_event": 6} and result["rejected"] == {str(bad["frNr"]): ANY_TIME_ERROR}
    assert f"calendar AB: frNr {bad['frNr']} skipped: {ANY_TIME_ERROR}" in caplog.text
    assert "kaputt" not in caplog.text  # the line names the field, never a text
    assert sorted(m.event_frnr(e) for e in world.events()) == [t["frNr"] for t in good]
    assert lock_redis.hget(SKIPPED_KEY, "calendar") == b"1"
    assert _cli(["calendar", "status"]) == 0
    (status,) = json.loads(capsys.readouterr().out)
    assert status["rejected"] == {str(bad["frNr"]): ANY_TIME_ERROR}
    assert _cli(["calendar", "audit", "AB"]) == 1
    assert json.loads(capsys.readouterr().out)["rejected"] == {str(bad["frNr"]): ANY_TIME_ERROR}
    # fixed in Advoware: synced on the next run, and the report is empty again
    _raw_termin(world, bad["frNr"], uhrzeitVon="10:00:00", rowId="fixed")
    result = sync()
    assert result["actions"] == {"insert_event": 1} and result["rejected"] == {}
    assert CalendarState(world.redis, "AB").rejected() == {}
    world.assert_in_sync()


ANY_TIME_ERROR = "uhrzeitVon: not a time (HH:MM[:SS], 00:00-24:00)"


def test_termin_ending_past_midnight_or_at_24_00_keeps_its_end_through_a_google_edit(world):
    late = world.termin(offset=5, text="Nachtsitzung")
    _raw_termin(world, late["frNr"], uhrzeitVon="22:00:00", uhrzeitBis="01:00:00")  # same datum, as sent
    whole = world.termin(offset=6, text="bis Mitternacht")
    _raw_termin(world, whole["frNr"], uhrzeitBis="24:00:00")
    result = sync()
    assert result["actions"] == {"insert_event": 2} and result["rejected"] == {}
    event = world.event(late["frNr"])
    assert event["start"]["dateTime"].startswith(f"{day(5)}T22:00:00")
    assert event["end"]["dateTime"].startswith(f"{day(6)}T01:00:00")
    assert world.event(whole["frNr"])["end"]["dateTime"].startswith(f"{day(7)}T00:00:00")
    for t in (late, whole):
        world.google.human_update(world.calendar(), m.event_id_for(t["frNr"]), {"location": "Saal 2"})
    assert sync()["actions"] == {"update_termin": 2}
    after = world.advo.get_termin(late["frNr"])
    assert (after["datum"][:10], after["uhrzeitVon"], after["datumBis"][:10], after["uhrzeitBis"]) == (
        day(5), "22:00:00", day(6), "01:00:00")
    after = world.advo.get_termin(whole["frNr"])
    assert (after["datumBis"][:10], after["uhrzeitBis"], after["ort"]) == (day(7), "00:00:00", "Saal 2")
    world.assert_in_sync()
    assert sync()["path"] == "no_change"


def test_event_at_the_second_0230_on_the_autumn_day_keeps_its_instant_when_stamped(world):
    autumn = next(d for d in _dst_days() if d[5:7] != "03")
    sync()
    made = world.google.human_insert(world.calendar(), {
        "summary": "zweites 02:30", "start": {"dateTime": f"{autumn}T02:30:00+01:00"},
        "end": {"dateTime": f"{autumn}T03:30:00+01:00"}})
    assert sync()["actions"] == {"create_termin": 1}
    event = world.google.get_event(world.calendar(), made["id"])
    assert m.event_frnr(event) is not None
    assert (event["start"]["dateTime"], event["end"]["dateTime"]) == (f"{autumn}T02:30:00+01:00",
                                                                      f"{autumn}T03:30:00+01:00")
    world.advo.human_update_termin(m.event_frnr(event), text="nur der Text")  # Advoware's write keeps it too
    assert sync()["actions"] == {"update_event": 1}
    event = world.google.get_event(world.calendar(), made["id"])
    assert (event["summary"], event["start"]["dateTime"]) == ("nur der Text", f"{autumn}T02:30:00+01:00")
    world.assert_in_sync()
    assert sync()["path"] == "no_change"


def test_a_write_refused_with_400_is_reported_and_the_other_writes_go_through(world):
    termine = [world.termin(offset=o) for o in range(2, 5)]
    sync()
    for t in termine:
        world.google.human_update(world.calendar(), m.event_id_for(t["frNr"]), {"location": "Saal 9"})
    world.sandbox.kit("advoware").add_fault(status=400, method="PUT", path="/api/v1/advonet/Termine", times=1)
    result = sync()
    assert result["actions"] == {"update_termin": 2}
    (refused,) = result["rejected"]
    assert result["rejected"][refused] == "update_termin refused (advoware 400)"
    assert sorted(t["ort"] for t in world.termine()) == ["Kanzlei", "Saal 9", "Saal 9"]
    assert CalendarState(world.redis, "AB").rejected() == result["rejected"]

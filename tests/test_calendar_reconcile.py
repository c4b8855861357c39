"""The calendar decision table, pure: every row of SPEC §6's policies, the guard, state loss, and convergence."""
import itertools
from dataclasses import replace
from datetime import date, timedelta

import pytest
from hypothesis import given, settings as hsettings, strategies as st

from bitbylaw_tasks.calendar import mapping as m
from bitbylaw_tasks.calendar import reconcile as rc

WINDOW = (date(2024, 4, 1), date(2025, 5, 1))
_rows = itertools.count(1)
_etags = itertools.count(1)


def termin(frnr, **kw):
    base = {"frNr": frnr, "kuerzel": "AB", "art": "Termin", "datum": "2024-05-10", "datumBis": "2024-05-10",
            "uhrzeitVon": "10:00:00", "uhrzeitBis": "11:00:00", "ganztaegig": False, "text": f"T{frnr}",
            "ort": None, "notiz": None, "rowId": f"row{next(_rows)}"}
    base.update(kw)
    return base


def event_for(t, event_id=None, **changes):
    body = m.to_event(m.from_termin(t), t["frNr"])
    body.update(changes)
    return {**body, "id": event_id or m.event_id_for(t["frNr"]), "etag": f'"{next(_etags)}"'}


def user_event(event_id="userevent1", **kw):
    body = {"id": event_id, "etag": f'"{next(_etags)}"', "summary": "Neu", "status": "confirmed",
            "start": {"dateTime": "2024-06-01T09:00:00+02:00"}, "end": {"dateTime": "2024-06-01T10:00:00+02:00"}}
    body.update(kw)
    return body


def synced(*termine):
    """(state, events) of pairs that are in sync."""
    state, events = {}, {}
    for t in termine:
        ev = event_for(t)
        state[t["frNr"]] = rc.item_for(ev["id"], m.from_termin(t), t, ev)
        events[t["frNr"]] = ev
    return state, events


def plan(termine, events, state, *, full=False, probes=None, pending=(), delete_termine=False, guard_min=5):
    return rc.reconcile(rc.Inputs("AB", WINDOW, list(termine), list(events), full, dict(state),
                                  frozenset(pending), dict(probes or {}), delete_termine, guard_min))


def kinds(p):
    return [a.kind for a in p.actions]


def test_new_in_advoware_is_inserted():
    t = termin(1)
    p = plan([t], [], {})
    assert kinds(p) == [rc.INSERT_EVENT] and p.actions[0].appt == m.from_termin(t) and p.actions[0].termin is t


def test_unchanged_and_our_own_write_coming_back_need_nothing():
    t = termin(1)
    state, events = synced(t)
    assert plan([t], [], state).actions == []
    assert plan([t], [events[1]], state).actions == []           # incremental echo of our write
    assert plan([t], [events[1]], state, full=True).actions == []


def test_advoware_change_updates_google_with_if_match():
    t = termin(1)
    state, events = synced(t)
    changed = {**t, "text": "verlegt", "rowId": "new"}
    p = plan([changed], [], state)
    assert kinds(p) == [rc.UPDATE_EVENT] and p.actions[0].etag == events[1]["etag"]
    assert p.actions[0].appt.text == "verlegt"


def test_new_rowid_without_content_change_only_records_it():
    t = termin(1)
    state, _ = synced(t)
    p = plan([{**t, "rowId": "rewritten"}], [], state)
    assert kinds(p) == [rc.RECORD] and p.actions[0].item.a_row == "rewritten"


def test_google_change_updates_advoware_keeping_art():
    t = termin(1, art="Frist", ganztaegig=True, uhrzeitVon=None, uhrzeitBis=None)
    state, events = synced(t)
    moved = {**events[1], "etag": '"99"', "start": {"date": "2024-05-13"}, "end": {"date": "2024-05-14"},
             "summary": "Frist: verlängert"}
    p = plan([t], [moved], state)
    assert kinds(p) == [rc.UPDATE_TERMIN]
    a = p.actions[0]
    assert a.appt.art == "Frist" and a.appt.start_date == date(2024, 5, 13) and a.appt.text == "verlängert"
    assert m.to_termin(a.appt, "AB", base=a.termin)["art"] == "Frist" and not a.stamp


def test_google_etag_change_without_content_change_only_records_it():
    t = termin(1)
    state, events = synced(t)
    p = plan([t], [{**events[1], "etag": '"777"', "colorId": "3"}], state)
    assert kinds(p) == [rc.RECORD] and p.actions[0].item.g_etag == '"777"'


def test_conflict_advoware_wins_unless_both_made_the_same_change():
    t = termin(1)
    state, events = synced(t)
    a_side = {**t, "text": "Advoware", "rowId": "new"}
    g_side = {**events[1], "etag": '"50"', "summary": "Google"}
    p = plan([a_side], [g_side], state)
    assert kinds(p) == [rc.UPDATE_EVENT] and p.actions[0].appt.text == "Advoware"
    assert p.actions[0].etag == '"50"' and "conflict" in p.actions[0].reason
    same = {**events[1], "etag": '"51"', "summary": "Advoware"}
    assert kinds(plan([a_side], [same], state)) == [rc.RECORD]


def test_deleted_in_advoware_is_probed_then_deleted_in_google():
    t = termin(1)
    state, events = synced(t)
    first = plan([], [], state, guard_min=0)
    assert first.missing_probes == {1} and first.actions == []
    second = plan([], [], state, probes={1: None}, guard_min=0)
    assert kinds(second) == [rc.DELETE_EVENT] and not second.actions[0].keep
    assert second.actions[0].etag == events[1]["etag"]


def test_deleted_on_both_sides_is_forgotten():
    t = termin(1)
    state, events = synced(t)
    gone = {"id": events[1]["id"], "status": "cancelled", "etag": '"9"'}
    assert kinds(plan([], [gone], state, probes={1: None}, guard_min=0)) == [rc.FORGET]


def test_moved_to_another_employee_is_deleted_here():
    t = termin(1)
    state, _ = synced(t)
    p = plan([], [], state, probes={1: {**t, "kuerzel": "XY"}}, guard_min=0)
    assert kinds(p) == [rc.DELETE_EVENT] and "another employee" in p.actions[0].reason


def test_moved_out_of_the_window_is_written_once_then_forgotten():
    t = termin(1)
    state, _ = synced(t)
    far = {**t, "datum": "2026-01-05", "datumBis": "2026-01-05", "rowId": "far"}
    p = plan([], [], state, probes={1: far}, guard_min=0)
    assert kinds(p) == [rc.UPDATE_EVENT] and not p.actions[0].keep
    assert kinds(plan([], [], state, probes={1: {**t, "rowId": "same"}}, guard_min=0)) == [rc.FORGET]


def test_aged_out_of_the_window_is_forgotten_without_a_probe():
    old = termin(1, datum="2024-03-01", datumBis="2024-03-02")
    state, _ = synced(old)
    p = plan([], [], state)
    assert kinds(p) == [rc.FORGET] and not p.missing_probes


@pytest.mark.parametrize("art", ["Frist", "Wiedervorlage"])
@pytest.mark.parametrize("delete_termine", [False, True])
def test_frist_and_wiedervorlage_deleted_in_google_come_back(art, delete_termine):
    t = termin(1, art=art)
    state, events = synced(t)
    gone = {"id": events[1]["id"], "status": "cancelled", "etag": '"9"'}
    p = plan([t], [gone], state, delete_termine=delete_termine)
    assert kinds(p) == [rc.UPDATE_EVENT] and p.actions[0].etag is None and p.actions[0].event_id == events[1]["id"]


def test_termin_deleted_in_google_follows_the_setting():
    t = termin(1)
    state, events = synced(t)
    gone = {"id": events[1]["id"], "status": "cancelled"}
    assert kinds(plan([t], [gone], state)) == [rc.UPDATE_EVENT]
    p = plan([t], [gone], state, delete_termine=True)
    assert kinds(p) == [rc.DELETE_TERMIN] and not p.actions[0].keep
    changed = {**t, "text": "neu", "rowId": "x"}  # modified in Advoware meanwhile: Advoware wins
    assert kinds(plan([changed], [gone], state, delete_termine=True)) == [rc.UPDATE_EVENT]


def test_full_listing_without_the_event_means_deleted_in_google():
    t = termin(1, art="Frist")
    state, _ = synced(t)
    assert kinds(plan([t], [], state, full=True)) == [rc.UPDATE_EVENT]


def test_state_lost_rebuilds_from_stamps_without_writes():
    t1, t2 = termin(1), termin(2, art="Frist", ganztaegig=True)
    _, events = synced(t1, t2)
    p = plan([t1, t2], events.values(), {}, full=True)
    assert kinds(p) == [rc.RECORD, rc.RECORD]
    assert {a.frnr: a.item.event_id for a in p.actions} == {1: events[1]["id"], 2: events[2]["id"]}


def test_state_lost_and_contents_differ_then_advoware_wins():
    t = termin(1)
    _, events = synced(t)
    edited = {**events[1], "summary": "Google-Text"}
    p = plan([t], [edited], {}, full=True)
    assert kinds(p) == [rc.UPDATE_EVENT] and p.actions[0].appt.text == "T1"


def test_state_lost_and_termin_gone_is_probed_then_deleted():
    t = termin(1)
    _, events = synced(t)
    p = plan([], [events[1]], {}, full=True)
    assert p.missing_probes == {1}
    assert kinds(plan([], [events[1]], {}, full=True, probes={1: None})) == [rc.DELETE_EVENT]


def test_stamped_events_outside_the_window_are_not_probed():
    old = termin(1, datum="2023-01-01", datumBis="2023-01-01")
    _, events = synced(old)
    p = plan([], [events[1]], {}, full=True)
    assert not p.missing_probes and p.actions == [] and sum(p.skipped.values()) == 1


def test_two_events_stamped_with_one_frnr_only_ours_is_adopted():
    t = termin(1)
    _, events = synced(t)
    copy = {**events[1], "id": "usercopy1", "etag": '"5"'}
    p = plan([t], [copy, events[1]], {}, full=True)
    assert kinds(p) == [rc.RECORD] and p.actions[0].item.event_id == m.event_id_for(1)
    assert p.skipped["stamped for another frNr or outside the window"] == 1


def test_new_in_google_becomes_a_termin_and_gets_stamped():
    ev = user_event(summary="Frist: sieht aus wie eine")
    p = plan([], [ev], {})
    assert kinds(p) == [rc.CREATE_TERMIN]
    a = p.actions[0]
    assert a.appt.art == "Termin" and a.appt.text == "Frist: sieht aus wie eine" and a.stamp
    assert a.etag == ev["etag"] and a.event_id == ev["id"]


@pytest.mark.parametrize("event,reason", [
    (user_event(start={"date": "2026-06-01"}, end={"date": "2026-06-02"}), "outside the window"),
    (user_event(recurrence=["RRULE:FREQ=WEEKLY"]), "not mappable (recurring, special type)"),
    (user_event(eventType="focusTime"), "not mappable (recurring, special type)"),
])
def test_google_events_that_are_not_synced(event, reason):
    p = plan([], [event], {})
    assert p.actions == [] and p.skipped[reason] == 1


def test_unknown_cancelled_events_are_ignored():
    assert plan([], [{"id": "abcde", "status": "cancelled"}], {}).actions == []


def test_pending_create_adopts_the_termin_it_may_have_made():
    ev = user_event()
    made = m.to_termin(m.from_event(ev), "AB")
    made.update(frNr=42, rowId="r42")
    p = plan([made], [ev], {}, pending={ev["id"]})
    assert kinds(p) == [rc.UPDATE_EVENT] and p.actions[0].frnr == 42 and p.actions[0].event_id == ev["id"]
    assert ev["id"] in p.drop_pending
    other = termin(43, text="etwas anderes")
    p = plan([other], [ev], {}, pending={ev["id"]})
    assert sorted(kinds(p)) == [rc.CREATE_TERMIN, rc.INSERT_EVENT]


def test_pending_entries_of_deleted_or_known_events_are_dropped():
    t = termin(1)
    state, events = synced(t)
    p = plan([t], [{"id": "gone1", "status": "cancelled"}], state, pending={"gone1", events[1]["id"], "unseen"})
    assert p.drop_pending == {"gone1", events[1]["id"]}


def test_stamp_pending_is_written():
    t = termin(1)
    state, events = synced(t)
    state[1] = replace(state[1], g_etag=None, g_hash=None)
    p = plan([t], [], state)
    assert kinds(p) == [rc.UPDATE_EVENT] and p.actions[0].reason == "Google side incomplete"
    unstamped = {k: v for k, v in events[1].items() if k not in ("extendedProperties", "colorId")}
    state2, _ = synced(t)
    p = plan([t], [{**unstamped, "etag": '"3"'}], state2)
    assert kinds(p) == [rc.UPDATE_EVENT]


def test_event_made_recurring_in_google_gets_advoware_back():
    t = termin(1)
    state, events = synced(t)
    p = plan([t], [{**events[1], "etag": '"8"', "recurrence": ["RRULE:FREQ=DAILY"]}], state)
    assert kinds(p) == [rc.UPDATE_EVENT]


def test_google_change_moving_out_of_the_window_is_written_then_not_kept():
    t = termin(1)
    state, events = synced(t)
    far = {**events[1], "etag": '"8"', "start": {"date": "2027-01-01"}, "end": {"date": "2027-01-02"}}
    p = plan([t], [far], state)
    assert kinds(p) == [rc.UPDATE_TERMIN] and not p.actions[0].keep


def test_guard_trips_when_advoware_is_suddenly_empty():
    termine = [termin(n) for n in range(1, 6)]
    state, _ = synced(*termine)
    p = plan([], [], state, probes={n: None for n in range(1, 6)})
    assert p.guard == rc.GUARD_ADVOWARE_EMPTY
    assert plan([], [], state, probes={n: None for n in range(1, 6)}, guard_min=6).guard is None
    assert plan([], [], state, probes={n: None for n in range(1, 6)}, guard_min=0).guard is None
    assert plan(termine[:1], [], state, probes={n: None for n in range(2, 6)}).guard is None


def test_guard_trips_when_google_is_empty_and_termine_would_be_deleted():
    termine = [termin(n) for n in range(1, 6)]
    state, events = synced(*termine)
    assert plan(termine, [], state, full=True, delete_termine=True).guard == rc.GUARD_GOOGLE_EMPTY
    gone = [{"id": e["id"], "status": "cancelled"} for e in events.values()]
    assert plan(termine, gone, state, delete_termine=True).guard == rc.GUARD_GOOGLE_EMPTY
    recreate = plan(termine, [], state, full=True)  # re-creating deletes nothing: no guard
    assert recreate.guard is None and kinds(recreate) == [rc.UPDATE_EVENT] * 5


# --- convergence on an in-memory model of both sides ---
class World:
    """Both sides and a status store, in memory; applies plans the way the service does."""

    def __init__(self):
        self.advo: dict[int, dict] = {}
        self.google: dict[str, dict] = {}
        self.deleted: set[str] = set()
        self.changes: list[str] = []
        self.state: dict[int, rc.Item] = {}
        self.next_frnr = 100
        self.etag = itertools.count(1000)

    def g_write(self, event_id, body):
        self.google[event_id] = {**body, "id": event_id, "etag": f'"{next(self.etag)}"'}
        self.deleted.discard(event_id)
        self.changes.append(event_id)
        return self.google[event_id]

    def g_delete(self, event_id):
        self.google.pop(event_id, None)
        self.deleted.add(event_id)
        self.changes.append(event_id)

    def a_write(self, frnr, body):
        self.advo[frnr] = {**body, "frNr": frnr, "rowId": f"r{next(self.etag)}"}
        return self.advo[frnr]

    def sync(self, delete_termine=False):
        changes, self.changes = list(dict.fromkeys(self.changes)), []
        events = [self.google[i] if i in self.google else {"id": i, "status": "cancelled"} for i in changes]
        termine = [t for t in self.advo.values() if m.from_termin(t).overlaps(*WINDOW)]
        inputs = rc.Inputs("AB", WINDOW, termine, events, False, dict(self.state), frozenset(), {},
                           delete_termine, 0)
        p = rc.reconcile(inputs)
        if p.missing_probes:
            p = rc.reconcile(replace(inputs, probes={f: self.advo.get(f) for f in p.missing_probes}))
        for a in p.actions:
            keep = lambda frnr, item: self.state.__setitem__(frnr, item) if a.keep else self.state.pop(frnr, None)
            if a.kind in (rc.INSERT_EVENT, rc.UPDATE_EVENT):
                event_id = a.event_id or m.event_id_for(a.frnr)
                ev = self.g_write(event_id, m.to_event(a.appt, a.frnr))
                keep(a.frnr, rc.item_for(event_id, a.appt, a.termin, ev))
            elif a.kind == rc.DELETE_EVENT:
                self.g_delete(a.event_id)
                self.state.pop(a.frnr, None)
            elif a.kind in (rc.CREATE_TERMIN, rc.UPDATE_TERMIN):
                frnr = a.frnr or self.next_frnr
                self.next_frnr += 1
                t = self.a_write(frnr, m.to_termin(a.appt, "AB", base=a.termin))
                ev = self.g_write(a.event_id, m.to_event(m.from_termin(t), frnr)) if a.stamp else a.event
                keep(frnr, rc.item_for(a.event_id, m.from_termin(t), t, ev))
            elif a.kind == rc.DELETE_TERMIN:
                self.advo.pop(a.frnr, None)
                self.state.pop(a.frnr, None)
            elif a.kind == rc.RECORD:
                self.state[a.frnr] = a.item
            elif a.kind == rc.FORGET:
                self.state.pop(a.frnr, None)
        return p


edits = st.lists(st.tuples(st.sampled_from(["a_new", "a_edit", "a_del", "g_new", "g_edit", "g_del"]),
                           st.integers(0, 50), st.sampled_from(m.ARTEN), st.integers(0, 40)), max_size=12)


@hsettings(max_examples=150, deadline=None)
@given(st.lists(edits, min_size=1, max_size=4), st.booleans())
def test_random_edits_on_both_sides_converge(rounds, delete_termine):
    w = World()
    for batch in rounds:
        for op, pick, art, day in batch:
            start = (date(2024, 5, 1) + timedelta(days=day)).isoformat()
            if op == "a_new":
                w.a_write(w.next_frnr, termin(0, art=art, datum=start, datumBis=start, text=f"a{pick}"))
                w.next_frnr += 1
            elif op in ("a_edit", "a_del") and w.advo:
                frnr = sorted(w.advo)[pick % len(w.advo)]
                if op == "a_del":
                    del w.advo[frnr]
                else:
                    w.a_write(frnr, {**w.advo[frnr], "text": f"edit{pick}", "datum": start, "datumBis": start})
            elif op == "g_new":
                w.g_write(f"user{pick}x{day}", {k: v for k, v in user_event(summary=f"g{pick}").items()
                                                if k not in ("id", "etag")})
            elif op in ("g_edit", "g_del") and w.google:
                event_id = sorted(w.google)[pick % len(w.google)]
                if op == "g_del":
                    w.g_delete(event_id)
                else:
                    w.g_write(event_id, {**w.google[event_id], "summary": f"gedit{pick}",
                                         "location": f"Raum {day}"})
        w.sync(delete_termine)
    w.sync(delete_termine)
    assert w.sync(delete_termine).writes == []  # converged: a further run writes nothing
    # every Termin has exactly one live event with the same content, and nothing else is live
    live = {i: ev for i, ev in w.google.items()}
    assert len(live) == len(w.advo) == len(w.state)
    for frnr, t in w.advo.items():
        ev = live[w.state[frnr].event_id]
        assert m.from_event(ev).with_art(t["art"]) == m.from_termin(t) and m.event_frnr(ev) == frnr


# --- issue 19 ---
@pytest.mark.parametrize("art", ["Frist", "Wiedervorlage"])
def test_frist_renamed_in_google_without_its_prefix_gets_the_prefix_back(art):
    t = termin(1, art=art, text="Klage")
    state, events = synced(t)
    renamed = {**events[1], "etag": '"r1"', "summary": "Klageerwiderung"}
    p = plan([t], [renamed], state)
    assert kinds(p) == [rc.UPDATE_TERMIN] and p.actions[0].appt.text == "Klageerwiderung"
    assert p.actions[0].stamp  # the event is written back, with `Frist: ` in front
    # only the prefix removed (same text): the title is restored
    bare = {**events[1], "etag": '"r2"', "summary": "Klage"}
    assert kinds(plan([t], [bare], state)) == [rc.UPDATE_EVENT]
    # state lost: an event without its prefix is not adopted as it is
    assert kinds(plan([t], [bare], {}, full=True)) == [rc.UPDATE_EVENT]


def test_state_lost_and_stamped_event_made_recurring_is_adopted_not_duplicated():
    t = termin(1)
    _, events = synced(t)
    recurring = {**events[1], "id": "userevent7", "etag": '"r9"', "recurrence": ["RRULE:FREQ=WEEKLY"]}
    p = plan([t], [recurring], {}, full=True)
    assert kinds(p) == [rc.UPDATE_EVENT] and p.actions[0].event_id == "userevent7"


def test_state_lost_and_recurring_stamped_event_whose_termin_is_gone_is_deleted():
    t = termin(1)
    _, events = synced(t)
    recurring = {**events[1], "etag": '"r9"', "recurrence": ["RRULE:FREQ=WEEKLY"]}
    assert plan([], [recurring], {}, full=True).missing_probes == {1}
    p = plan([], [recurring], {}, full=True, probes={1: None})
    assert kinds(p) == [rc.DELETE_EVENT] and p.actions[0].event_id == recurring["id"]


def test_state_lost_and_stamped_event_moved_outside_the_window_is_adopted_not_duplicated():
    t = termin(1)
    _, events = synced(t)
    far = {**events[1], "id": "userevent8", "etag": '"r9"', "start": {"date": "2027-01-01"},
           "end": {"date": "2027-01-02"}}
    p = plan([t], [far], {}, full=True)
    assert kinds(p) == [rc.UPDATE_EVENT] and p.actions[0].event_id == "userevent8"


def test_one_unreadable_termin_is_skipped_and_reported_while_the_others_sync():
    bad = termin(2, uhrzeitVon="25:00")
    good = [termin(1), termin(3)]
    p = plan([good[0], bad, good[1]], [], {})
    assert kinds(p) == [rc.INSERT_EVENT, rc.INSERT_EVENT] and [a.frnr for a in p.actions] == [1, 3]
    assert list(p.rejected) == [2] and p.rejected[2].startswith("uhrzeitVon")
    # a known pair whose Termin became unreadable: left alone (no delete, no write), status kept
    state, events = synced(termin(2))
    p = plan([bad], [events[2]], state, full=True)
    assert p.actions == [] and list(p.rejected) == [2]
    # and when the probe answers with an unreadable Termin
    p = plan([], [], state, probes={2: bad})
    assert p.actions == [] and list(p.rejected) == [2]


def test_update_event_keeps_the_events_instant_at_the_second_0230():
    t = termin(1, datum="2024-10-27", datumBis="2024-10-27", uhrzeitVon="02:30", uhrzeitBis="03:30")
    state, events = synced(t)
    second = {**events[1], "etag": '"r5"', "start": {"dateTime": "2024-10-27T02:30:00+01:00"}}
    state = {1: rc.item_for(second["id"], m.from_termin(t), t, second)}
    changed = {**t, "text": "neu", "rowId": "r-new"}
    (action,) = plan([changed], [], state).actions  # incremental: the event is not in the listing
    assert action.kind == rc.UPDATE_EVENT
    p = plan([changed], [second], {**state, 1: replace(state[1], g_etag='"old"')})
    assert m.to_event(p.actions[0].appt, 1)["start"]["dateTime"] == "2024-10-27T02:30:00+01:00"

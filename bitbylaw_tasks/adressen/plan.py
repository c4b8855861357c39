"""The pure decision of one party's address sync: match Advoware's addresses to the CAdresse records, then
decide per address and per field (docs/adressen-sync.md). No I/O: `plan_party` takes what the service read.

Matching, in this order (each step only sees what the earlier ones left):
1. marker: an Advoware address whose `bemerkung` names a CAdresse of this party;
2. recognised: a tracked CAdresse (synced before) and an Advoware address without a known marker whose
   content is what the CAdresse last saw, else at the same position with most address lines still equal
   (a person edited it); several equal candidates: taken in Advoware's order;
3. initial: an untracked CAdresse and an unmarked Advoware address with the same address lines (the first
   sync of a party with addresses on both sides);
then what is left: an untracked CAdresse is POSTed (with the marker); a marked Advoware address whose
CAdresse is gone was deleted in EspoCRM (manual action); an unmarked Advoware address is imported into
EspoCRM; a tracked CAdresse without partner was removed in Advoware.

Per matched pair, per field, a 3-way compare against the agreed content: equal -> nothing; only Advoware
changed -> EspoCRM takes it; only EspoCRM changed -> Advoware takes it (a PUT for the four writable fields,
a manual action for the others); both changed -> EspoCRM wins, with a note. Never synced: an empty
EspoCRM field takes Advoware's value, otherwise EspoCRM wins.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

from bitbylaw_tasks.adressen import mapping
from bitbylaw_tasks.adressen.mapping import FIELDS, MATCH_KEY, WRITABLE, Content
from bitbylaw_tasks.adressen.tracking import Tracking, parse

RECOGNISE_MIN_EQUAL = 4  # of the 7 address lines, for "the same address, edited by a person"


@dataclass(frozen=True)
class ManualAction:
    """One change a person must make in Advoware; `key` is stable while the same change is wanted."""

    key: str
    adresse_id: str | None
    field: str
    value: object
    instruction: str


@dataclass
class AddressPlan:
    """What to do for one address. `variant` names the decision (tests and metrics)."""

    variant: str
    espo_id: str | None = None
    advoware: dict | None = None              # the Advoware address as read (with reihenfolgeIndex)
    post: dict | None = None                  # POST body
    put: dict | None = None                   # PUT body (the four writable fields)
    espo_write: dict = field(default_factory=dict)   # content attributes for EspoCRM
    tracking: Tracking | None = None          # the tracking after this sync (None: leave as is)
    manual: list[ManualAction] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    error: str | None = None                  # syncErrorMessage (bad input)
    status: str = "clean"
    pushed: tuple[str, ...] = ()
    pulled: tuple[str, ...] = ()


@dataclass
class PartyPlan:
    addresses: list[AddressPlan]

    @property
    def manual(self) -> list[ManualAction]:
        return [action for plan in self.addresses for action in plan.manual]


@dataclass
class _Advo:
    index: int
    raw: dict
    content: Content
    marker: str | None


@dataclass
class _Espo:
    id: str
    raw: dict
    content: Content
    tracking: Tracking | None


def _same(a, b) -> bool:
    return mapping.text(a) == mapping.text(b) if not isinstance(a, bool) and not isinstance(b, bool) else a == b


def compare(espo: Content, advo: Content, base: Content | None) -> dict[str, str]:
    """Per field: same | pull (Advoware's value to EspoCRM) | push (EspoCRM's to Advoware) | conflict."""
    out = {}
    for name in FIELDS:
        e, a = espo.get(name), advo.get(name)
        if _same(e, a):
            out[name] = "same"
        elif base is None:
            out[name] = "pull" if e in (None, "") else "push"
        elif _same(e, base.get(name)):
            out[name] = "pull"
        elif _same(a, base.get(name)):
            out[name] = "push"
        else:
            out[name] = "conflict"
    return out


def _manual_for(name: str, espo_value, advo: _Advo, espo_id: str, betnr: int) -> ManualAction | None:
    """The manual action that would make Advoware hold EspoCRM's value of a read-only field."""
    if name == "isPrimary" and not espo_value:
        return None  # another address becomes the main one: its own action covers this
    if name == "isActive":
        wanted = "gueltigBis" if espo_value else "isActive"
        text = (mapping.instruction(betnr, advo.index, "gueltigBis", None) if espo_value
                else mapping.instruction(betnr, advo.index, "isActive", False))
        return ManualAction(f"{espo_id}:{wanted}", espo_id, name, espo_value, text)
    return ManualAction(f"{espo_id}:{name}", espo_id, name, espo_value,
                        mapping.instruction(betnr, advo.index, name, espo_value))


def decide_pair(espo: _Espo, advo: _Advo, betnr: int, origin: str, variant: str) -> AddressPlan:
    """The per-field decisions for one matched pair (module docstring)."""
    base = espo.tracking.agreed if espo.tracking else None
    verdicts = compare(espo.content, advo.content, base)
    agreed = dict(advo.content)
    espo_write, manual, notes, pushed, pulled, refused = {}, [], [], [], [], []
    put_wanted = False
    for name, verdict in verdicts.items():
        if verdict == "pull":
            espo_write[name] = advo.content[name]
            pulled.append(name)
        elif verdict in ("push", "conflict"):
            pushed.append(name)
            if verdict == "conflict":
                notes.append(f"address {advo.index}: {mapping.LABELS[name]} was changed in both systems; "
                             f"EspoCRM's value '{espo.content[name]}' wins over Advoware's '{advo.content[name]}'")
            if name in WRITABLE:
                put_wanted = True
                agreed[name] = espo.content[name]
            elif name == "land" and espo.content[name] and espo.content[name].upper() not in mapping.COUNTRIES:
                refused.append(f"Land '{espo.content[name][:20]}' is not a known country code (use e.g. DE, AT, CH)")
            else:
                action = _manual_for(name, espo.content[name], advo, espo.id, betnr)
                if action is not None:
                    manual.append(action)
    plan = AddressPlan(variant, espo_id=espo.id, advoware=advo.raw, espo_write=espo_write, manual=manual,
                       notes=notes, pushed=tuple(pushed), pulled=tuple(pulled))
    if origin == "espocrm" and advo.marker != espo.id:
        plan.manual.append(ManualAction(f"{espo.id}:marker", espo.id, "bemerkung", mapping.marker(espo.id),
                                        f"in Advoware, party {betnr}, address {advo.index}: put "
                                        f"'{mapping.marker(espo.id)}' back into Bemerkung (it was removed "
                                        f"there; the address was recognised by its content, none created twice)"))
    if refused:
        plan.error, plan.status = "; ".join(refused), "failed"
    if put_wanted:  # judged as the address is meant to be after this sync: EspoCRM's values (e.g. a PLZ
        # against the wanted Land) with what this sync pulls from Advoware (a Land a person changed there);
        # only a field the PUT changes blocks it, not one a person entered so in Advoware or a pending action
        changed = {n for n in WRITABLE if not _same(agreed[n], advo.content[n])}
        target = {**espo.content, **espo_write, **{n: agreed[n] for n in WRITABLE}}
        problems = [m for f, m in mapping.field_problems(target) if f in changed or f == "*"]
        if problems:
            plan.error = "; ".join(refused + problems)
            plan.status = "failed"
            for name in WRITABLE:
                agreed[name] = advo.content[name]
        else:
            plan.put = {name: agreed[name] for name in WRITABLE}
    seen = {**advo.content, **({n: agreed[n] for n in WRITABLE} if plan.put else {})}
    plan.tracking = Tracking(origin, agreed, seen, advo.index)
    return plan


def _recognised(espo: _Espo, candidates: list[_Advo]) -> _Advo | None:
    seen = espo.tracking.seen
    exact = [a for a in candidates if all(_same(a.content[n], seen[n]) for n in FIELDS if n != "isActive")]
    if exact:
        return exact[0]
    score = {id(a): sum(_same(a.content[n], seen[n]) for n in MATCH_KEY) for a in candidates}
    near = [a for a in candidates if score[id(a)] >= RECOGNISE_MIN_EQUAL]
    if not near:
        return None
    same_place = [a for a in near if a.index == espo.tracking.index]
    if same_place:
        return same_place[0]
    best = max(score[id(a)] for a in near)
    top = [a for a in near if score[id(a)] == best]
    return top[0] if len(top) == 1 else None  # edited AND moved, and not unique: ambiguous, not guessed


def plan_party(advoware: list[dict], espocrm: list[dict], betnr: int, today: date) -> PartyPlan:
    """Every address's plan for one party (module docstring); `advoware` in Advoware's order."""
    advos = [_Advo(int(a.get("reihenfolgeIndex") or i), a, mapping.from_advoware(a, today),
                   mapping.marker_of(a.get("bemerkung"))) for i, a in enumerate(advoware, start=1)]
    espos = [_Espo(r["id"], r, mapping.from_espocrm(r), parse(r.get("advowareSnapshot"))) for r in espocrm]
    by_id = {e.id: e for e in espos}
    plans: list[AddressPlan] = []
    free = list(advos)
    paired: set[str] = set()

    # 1. marker
    for advo in list(free):
        espo = by_id.get(advo.marker or "")
        if espo is None:
            continue
        free.remove(advo)
        if espo.id in paired:  # a person copied a marked address: leave it alone, ask once
            plans.append(AddressPlan("duplicate_marker", advoware=advo.raw, manual=[ManualAction(
                f"{espo.id}:duplicate:{advo.index}", None, "bemerkung", None,
                f"in Advoware, party {betnr}, address {advo.index}: carries the same '{mapping.marker(espo.id)}' "
                f"as another address; remove that text from the copy")]))
            continue
        paired.add(espo.id)
        origin = espo.tracking.origin if espo.tracking else "espocrm"
        plans.append(decide_pair(espo, advo, betnr, origin, "marker" if espo.tracking else "resumed_post"))
    # 2. recognised without a (known) marker
    retired = {e.id for e in espos if e.raw.get("syncStatus") == "deleted_in_advoware"}  # gone there for good
    for espo in sorted((e for e in espos if e.id not in paired and e.tracking and e.id not in retired),
                       key=lambda e: e.tracking.index or 0):
        advo = _recognised(espo, [a for a in free if a.marker not in by_id])
        if advo is not None:
            free.remove(advo)
            paired.add(espo.id)
            plans.append(decide_pair(espo, advo, betnr, espo.tracking.origin, "recognised"))
    # 3. initial matching of untracked CAdresse records, then POST
    for espo in (e for e in espos if e.id not in paired and not e.tracking):
        key = mapping.match_key(espo.content)
        advo = next((a for a in free if not a.marker and mapping.match_key(a.content) == key), None)
        if advo is not None:
            free.remove(advo)
            paired.add(espo.id)
            plans.append(decide_pair(espo, advo, betnr, "matched", "initial_match"))
            continue
        paired.add(espo.id)
        plans.append(_post(espo))
    # what is left in Advoware: deleted in EspoCRM (marked) or created in Advoware (unmarked)
    for advo in free:
        if advo.marker:
            plans.append(_deleted_in_espocrm(advo, betnr))
        else:
            seen = dict(advo.content)
            plans.append(AddressPlan("import", advoware=advo.raw, espo_write=mapping.to_espocrm(seen),
                                     tracking=Tracking("advoware", seen, seen, advo.index)))
    # tracked CAdresse without a partner: removed in Advoware
    for espo in espos:
        if espo.id in paired:
            continue
        if espo.raw.get("syncStatus") == "deleted_in_advoware":
            plans.append(AddressPlan("gone_in_advoware", espo_id=espo.id, status="deleted_in_advoware"))
        else:
            plans.append(AddressPlan("gone_in_advoware", espo_id=espo.id, espo_write={"isActive": False},
                                     status="deleted_in_advoware",
                                     notes=[f"an address ({espo.raw.get('name') or espo.id}) was removed in "
                                            f"Advoware (party {betnr}); marked inactive here"]))
    _main_follows_the_last_post(plans)
    return PartyPlan(plans)


def _main_follows_the_last_post(plans: list[AddressPlan]) -> None:
    """A POSTed main address takes Advoware's flag from every other address (one main per party): plan
    that consequence now — those addresses read as not main in Advoware and in EspoCRM — so the next
    check finds nothing to do."""
    posts = [p for p in plans if p.post is not None and p.post.get("standardAnschrift")]
    if not posts:
        return
    for plan in plans:
        if plan is posts[-1] or plan.tracking is None or not plan.tracking.seen.get("isPrimary"):
            continue
        track = plan.tracking
        plan.tracking = Tracking(track.origin, {**track.agreed, "isPrimary": False},
                                 {**track.seen, "isPrimary": False}, track.index)
        plan.espo_write["isPrimary"] = False
        if plan.post is not None:
            plan.post["standardAnschrift"] = False


def _post(espo: _Espo) -> AddressPlan:
    """An address new in EspoCRM: POST it with the marker, unless it is inactive or malformed."""
    if not espo.content["isActive"]:
        return AddressPlan("inactive_new", espo_id=espo.id)
    problems = mapping.problems(espo.content)
    if problems:
        return AddressPlan("invalid", espo_id=espo.id, error="; ".join(problems), status="failed")
    return AddressPlan("post", espo_id=espo.id, post=mapping.to_advoware_post(espo.content, espo.id),
                       tracking=Tracking("espocrm", dict(espo.content), dict(espo.content), None))


def _deleted_in_espocrm(advo: _Advo, betnr: int) -> AddressPlan:
    """A marked Advoware address whose CAdresse was deleted: a person must expire it (DELETE answers 403)."""
    plan = AddressPlan("deleted_in_espocrm", advoware=advo.raw)
    if advo.content["isActive"]:
        plan.manual.append(ManualAction(f"{advo.marker}:deleted", None, "isActive", False,
                                        mapping.instruction(betnr, advo.index, "isActive", False)
                                        + f" (deleted in EspoCRM: {mapping.marker(advo.marker)})"))
    return plan

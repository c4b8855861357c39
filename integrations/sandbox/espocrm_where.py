"""EspoCRM's list-search language for the simulator: decode both encodings, then filter and order records.

EspoCRM accepts `where` either as PHP bracket parameters
(`where[0][type]=equals&where[0][attribute]=syncStatus&where[0][value]=dirty`,
nested `and`/`or`/`not` as `where[0][value][0][type]=...`) or as one JSON
parameter `searchParams={"where": [...], "maxSize": ..., ...}`. Both decode to
the same list of items `{type, attribute, value}`.

Comparison semantics follow MySQL, the database behind the real EspoCRM:
- NULL never matches a comparison: `notEquals x` and `notIn [...]` skip NULLs;
- text comparisons are case-insensitive (the default `_ci` collation);
- in ascending order NULLs come first, in descending order last;
- ties are broken by `id` in the same direction (stable pages).
"""
from __future__ import annotations

import json
import re
from typing import Callable, Iterable

MAX_SIZE = 200


class SearchError(ValueError):
    """A malformed search request; the simulator answers 400 with this message as X-Status-Reason."""


# ---------------------------------------------------------------- decoding

_KEY_PART = re.compile(r"\[([^\]]*)\]")


def parse_php_query(pairs: Iterable[tuple[str, str]]) -> dict:
    """PHP's `parse_str`: `a[0][b]=1&a[0][c][]=2` -> {'a': {'0': {'b': '1', 'c': {'0': '2'}}}}."""
    root: dict = {}
    for key, value in pairs:
        bracket = key.find("[")
        if bracket <= 0:
            root[key] = value
            continue
        parts = [key[:bracket]] + _KEY_PART.findall(key[bracket:])
        node = root
        for i, part in enumerate(parts):
            if part == "":
                numeric = [int(k) for k in node if k.isdigit()]
                part = str(max(numeric) + 1 if numeric else 0)
            if i == len(parts) - 1:
                node[part] = value
            else:
                child = node.get(part)
                if not isinstance(child, dict):
                    child = node[part] = {}
                node = child
    return root


def php_lists(value):
    """Turn PHP arrays with keys 0..n (dicts here) into lists, recursively, keeping insertion order."""
    if isinstance(value, dict):
        converted = {k: php_lists(v) for k, v in value.items()}
        if converted and all(k.isdigit() for k in converted):
            return list(converted.values())
        return converted
    if isinstance(value, list):
        return [php_lists(v) for v in value]
    return value


def search_params(pairs: list[tuple[str, str]]) -> dict:
    """The search parameters of a list request: where, offset, maxSize, orderBy, order, select."""
    query = parse_php_query(pairs)
    params: dict = {}
    if "searchParams" in query:
        try:
            decoded = json.loads(query["searchParams"])
        except (TypeError, ValueError):
            raise SearchError("Bad searchParams: not valid JSON") from None
        if not isinstance(decoded, dict):
            raise SearchError("Bad searchParams: not an object")
        params.update(decoded)
    for name in ("where", "offset", "maxSize", "orderBy", "order", "select"):
        if name in query:
            params[name] = php_lists(query[name])
    where = params.get("where") or []
    if isinstance(where, dict):
        where = php_lists(where)
    if not isinstance(where, list):
        raise SearchError("Bad where: not an array")
    params["where"] = where
    params["offset"] = _int_param(params.get("offset"), "offset", 0)
    params["maxSize"] = _int_param(params.get("maxSize"), "maxSize", MAX_SIZE)
    select = params.get("select")
    if isinstance(select, str):
        select = [s.strip() for s in select.split(",") if s.strip()]
    params["select"] = select or None
    order = str(params.get("order") or "").lower()
    if order not in ("", "asc", "desc"):
        raise SearchError("Bad order")
    params["order"] = order or None
    params["orderBy"] = params.get("orderBy") or None
    return params


def _int_param(value, name: str, default: int) -> int:
    if value is None or value == "":
        return default
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise SearchError(f"Bad {name}") from None
    if number < 0:
        raise SearchError(f"Bad {name}")
    return number


# ---------------------------------------------------------------- evaluation

Predicate = Callable[[dict], bool]

_COMPARISONS = {
    "before": lambda a, b: a < b, "lessThan": lambda a, b: a < b,
    "after": lambda a, b: a > b, "greaterThan": lambda a, b: a > b,
    "lessThanOrEquals": lambda a, b: a <= b, "greaterThanOrEquals": lambda a, b: a >= b,
}
_TEXT_MATCH = {"like", "notLike", "contains", "notContains", "startsWith", "endsWith"}
_NO_VALUE = {"isNull", "isNotNull", "isTrue", "isFalse"}


def coerce(kind: str, value):
    """A search value as the column type compares it (ints as ints, dates padded, text folded)."""
    if value is None:
        return None
    if kind == "int":
        if isinstance(value, bool):
            return int(value)
        try:
            return int(value)
        except (TypeError, ValueError):
            raise SearchError(f"Bad value for an int attribute: {str(value)[:40]}") from None
    if kind == "datetime" and isinstance(value, str) and len(value) == 10:
        return value + " 00:00:00"
    if kind in ("varchar", "text", "enum") and isinstance(value, str):
        return value.casefold()
    if kind in ("varchar", "text", "enum", "id", "date", "datetime"):
        return str(value) if not isinstance(value, str) else value
    return value


def compile_where(items: list, field_types: dict[str, str]) -> Predicate:
    """One predicate for a list of where items (all must hold)."""
    predicates = [_compile_item(item, field_types) for item in items]
    return lambda record: all(p(record) for p in predicates)


def _compile_item(item, field_types: dict[str, str]) -> Predicate:
    if not isinstance(item, dict):
        raise SearchError("Bad where item")
    kind = item.get("type")
    value = item.get("value")
    if kind in ("and", "or", "not"):
        if isinstance(value, dict):
            value = php_lists(value)
        if not isinstance(value, list):
            raise SearchError(f"Bad where item: '{kind}' needs an array value")
        subs = [_compile_item(sub, field_types) for sub in value]
        if kind == "and":
            return lambda r: all(p(r) for p in subs)
        if kind == "or":
            return lambda r: any(p(r) for p in subs)
        return lambda r: not all(p(r) for p in subs)
    attribute = item.get("attribute")
    if kind == "equals" and field_types.get(f"{attribute}Data") in ("email", "phone"):
        return _any_address(attribute, value)
    if not isinstance(attribute, str) or attribute not in field_types:
        raise SearchError(f"Bad where item: unknown attribute '{str(attribute)[:60]}'")
    column = field_types[attribute]
    if column in ("email", "phone"):
        raise SearchError(f"Bad where item: '{attribute}' is not filterable")

    def cell(record):
        return coerce(column, record.get(attribute))

    if kind == "isNull":
        return lambda r: r.get(attribute) is None
    if kind == "isNotNull":
        return lambda r: r.get(attribute) is not None
    if kind == "isTrue":
        return lambda r: r.get(attribute) is True
    if kind == "isFalse":
        return lambda r: r.get(attribute) is False
    if kind in ("equals", "notEquals"):
        if isinstance(value, (list, dict)):
            raise SearchError(f"Bad where item: '{kind}' needs a scalar value")
        wanted = coerce(column, value)
        if wanted is None:
            return lambda r: False  # SQL: x = NULL is never true
        if kind == "equals":
            return lambda r: cell(r) is not None and cell(r) == wanted
        return lambda r: cell(r) is not None and cell(r) != wanted
    if kind in ("in", "notIn"):
        if isinstance(value, dict):
            value = php_lists(value)
        if not isinstance(value, list):
            raise SearchError(f"Bad where item: '{kind}' needs an array value")
        wanted_set = [coerce(column, v) for v in value]
        if kind == "in":
            return lambda r: cell(r) is not None and cell(r) in wanted_set
        if not wanted_set:
            return lambda r: True
        return lambda r: cell(r) is not None and cell(r) not in wanted_set
    if kind in _COMPARISONS:
        if value is None or isinstance(value, (list, dict)):
            raise SearchError(f"Bad where item: '{kind}' needs a scalar value")
        wanted = coerce(column, value)
        compare = _COMPARISONS[kind]
        return lambda r: cell(r) is not None and compare(cell(r), wanted)
    if kind == "between":
        if isinstance(value, dict):
            value = php_lists(value)
        if not isinstance(value, list) or len(value) != 2:
            raise SearchError("Bad where item: 'between' needs two values")
        low, high = coerce(column, value[0]), coerce(column, value[1])
        return lambda r: cell(r) is not None and low <= cell(r) <= high
    if kind in _TEXT_MATCH:
        if not isinstance(value, str):
            raise SearchError(f"Bad where item: '{kind}' needs a text value")
        pattern = _like_regex(kind, value)
        negate = kind.startswith("not")
        return lambda r: r.get(attribute) is not None and (
            bool(pattern.match(str(r.get(attribute)))) != negate)
    raise SearchError(f"Bad where item: unknown type '{str(kind)[:40]}'")


def _any_address(attribute: str, value) -> Predicate:
    """EspoCRM's `emailAddress` / `phoneNumber` equals: any of the record's addresses or numbers (e-mail
    compared case-insensitively), not only the primary one."""
    if not isinstance(value, str):
        raise SearchError(f"Bad where item: '{attribute}' needs a text value")
    key = "emailAddress" if attribute == "emailAddress" else "phoneNumber"
    wanted = value.strip().casefold() if key == "emailAddress" else value.strip()

    def matches(record) -> bool:
        entries = record.get(f"{attribute}Data") or []
        return any((str(e.get(key) or "").casefold() if key == "emailAddress" else e.get(key)) == wanted
                   for e in entries)

    return matches


def _like_regex(kind: str, value: str) -> re.Pattern:
    if kind in ("contains", "notContains"):
        value = f"%{value}%"
    elif kind == "startsWith":
        value = f"{value}%"
    elif kind == "endsWith":
        value = f"%{value}"
    body = "".join(".*" if ch == "%" else "." if ch == "_" else re.escape(ch) for ch in value)
    return re.compile(f"^{body}$", re.IGNORECASE | re.DOTALL)


# ---------------------------------------------------------------- ordering

def order_records(records: list[dict], order_by: str, descending: bool, field_types: dict[str, str]) -> list[dict]:
    """Sort like MySQL: NULLs first ascending (last descending), text case-insensitive, `id` breaks ties."""
    if order_by not in field_types or field_types[order_by] in ("email", "phone"):
        raise SearchError(f"Bad orderBy: '{str(order_by)[:60]}'")
    column = field_types[order_by]

    def key(record):
        value = coerce(column, record.get(order_by))
        return (value is not None, value if value is not None else 0, record["id"])

    return sorted(records, key=key, reverse=descending)

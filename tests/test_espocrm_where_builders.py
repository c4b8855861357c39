"""The `where` builders: each name gives EspoCRM's where type of that meaning, with the attribute and value
in the places EspoCRM reads them (`encode_where` then writes them as PHP bracket pairs)."""
import pytest

from integrations.espocrm import W, encode_where

COMPARISONS = {
    "equals": "equals", "not_equals": "notEquals", "before": "before", "after": "after",
    "less_than": "lessThan", "greater_than": "greaterThan", "less_than_or_equals": "lessThanOrEquals",
    "greater_than_or_equals": "greaterThanOrEquals", "contains": "contains",
}
TESTS = {"is_null": "isNull", "is_not_null": "isNotNull", "is_true": "isTrue", "is_false": "isFalse"}
GROUPS = {"and_": "and", "or_": "or", "not_": "not"}


@pytest.mark.parametrize("name,kind", COMPARISONS.items())
def test_a_comparison_carries_attribute_and_value(name, kind):
    assert getattr(W, name)("modifiedAt", "2026-01-02 03:04:05") == {
        "type": kind, "attribute": "modifiedAt", "value": "2026-01-02 03:04:05"}


@pytest.mark.parametrize("name,kind", TESTS.items())
def test_a_test_carries_only_the_attribute(name, kind):
    assert getattr(W, name)("betnr") == {"type": kind, "attribute": "betnr"}


@pytest.mark.parametrize("name,kind", GROUPS.items())
def test_a_group_carries_its_items_in_order(name, kind):
    first, second = W.equals("a", 1), W.is_null("b")
    assert getattr(W, name)(first, second) == {"type": kind, "value": [first, second]}


@pytest.mark.parametrize("name,kind", [("in_", "in"), ("not_in", "notIn")])
def test_a_list_test_takes_any_iterable_and_refuses_an_empty_one(name, kind):
    assert getattr(W, name)("syncStatus", (v for v in ("dirty", "failed"))) == {
        "type": kind, "attribute": "syncStatus", "value": ["dirty", "failed"]}
    with pytest.raises(ValueError, match="at least one value"):
        getattr(W, name)("syncStatus", [])


def test_between_and_a_value_of_zero_or_false_is_kept():
    assert W.between("n", 0, 5) == {"type": "between", "attribute": "n", "value": [0, 5]}
    assert W.equals("n", 0)["value"] == 0 and W.equals("flag", False)["value"] is False


def test_builders_nest_into_php_bracket_pairs():
    pairs = encode_where([W.or_(W.equals("a", True), W.in_("b", ["x"]))])
    assert pairs == [("where[0][type]", "or"), ("where[0][value][0][type]", "equals"),
                     ("where[0][value][0][attribute]", "a"), ("where[0][value][0][value]", "1"),
                     ("where[0][value][1][type]", "in"), ("where[0][value][1][attribute]", "b"),
                     ("where[0][value][1][value][0]", "x")]

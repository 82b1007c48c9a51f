"""plan.py: pure field semantics, tested with plain values."""

from __future__ import annotations

import pytest

from batchpatch.plan import CellError, Conflict, check_readback, plan_patch, same

PROFILE = {
    "PKey": "@a",
    "phone": "0033",
    "age": 31,
    "score": 1.5,
    "optin": True,
    "nick": None,
    "location": {"city": "Paris", "zipCode": "75011"},
    "tags": ["a"],
}


def test_all_equal_is_no_change() -> None:
    plan = plan_patch(PROFILE, {"phone": "0033", "age": "31", "optin": "yes"}, typed=False)
    assert plan.changed == {} and plan.body == {}


def test_only_differing_fields_are_sent() -> None:
    plan = plan_patch(PROFILE, {"phone": "0044", "age": "31"}, typed=False)
    assert plan.body == {"phone": "0044"}
    assert plan.changed == {"phone": ["0033", "0044"]}


@pytest.mark.parametrize(
    ("cell", "current_field", "expected"),
    [
        ("32", "age", 32),
        (" 32 ", "age", 32),
        ("32.0", "age", 32),
        ("2.25", "score", 2.25),
        ("FALSE", "optin", False),
        ("0", "optin", False),
        ("No", "optin", False),
        ("0044", "phone", "0044"),  # strings keep leading zeros
        ("x", "nick", "x"),  # null holds no type: the string as is
        ('["a", "b"]', "tags", ["a", "b"]),
    ],
)
def test_csv_cells_take_the_profiles_type(cell: str, current_field: str, expected: object) -> None:
    plan = plan_patch(PROFILE, {current_field: cell}, typed=False)
    assert same(plan.body[current_field], expected)


@pytest.mark.parametrize(("field", "cell"), [("age", "31.5"), ("age", "abc"), ("optin", "maybe"),
                                              ("score", "1,5"), ("tags", "{}")])
def test_a_cell_of_the_wrong_type_is_a_cell_error(field: str, cell: str) -> None:
    with pytest.raises(CellError, match=field):
        plan_patch(PROFILE, {field: cell}, typed=False)


def test_empty_cell_leaves_the_field_and_null_token_sets_null() -> None:
    plan = plan_patch(PROFILE, {"phone": "", "age": "#N/A"}, typed=False, null_token="#N/A")
    assert plan.body == {"age": None}
    assert plan.changed == {"age": [31, None]}


def test_jsonl_values_keep_their_types() -> None:
    plan = plan_patch(PROFILE, {"age": "31", "optin": 1}, typed=True)
    assert plan.body == {"age": "31", "optin": 1}  # not coerced; the API decides


def test_nested_field_sends_the_whole_object_merged() -> None:
    plan = plan_patch(PROFILE, {"location.city": "Lyon"}, typed=False)
    assert plan.body == {"location": {"city": "Lyon", "zipCode": "75011"}}
    assert plan.changed == {"location.city": ["Paris", "Lyon"]}
    assert PROFILE["location"]["city"] == "Paris"  # the profile is not modified


def test_jsonl_nested_object_means_its_leaves() -> None:
    plan = plan_patch(PROFILE, {"location": {"city": "Lyon"}}, typed=True)
    assert plan.body == {"location": {"city": "Lyon", "zipCode": "75011"}}


def test_nested_field_under_a_missing_object_creates_it() -> None:
    plan = plan_patch({"PKey": "@a"}, {"postal.city": "Lyon"}, typed=False)
    assert plan.body == {"postal": {"city": "Lyon"}}


def test_guard_mismatch_is_a_conflict_with_both_values() -> None:
    with pytest.raises(Conflict) as info:
        plan_patch(PROFILE, {"phone": "1", "phone@expected": "0099"}, typed=False)
    assert info.value.mismatch == {"phone": ["0099", "0033"]}


def test_guard_match_lets_the_change_through() -> None:
    plan = plan_patch(PROFILE, {"age": "40", "age@expected": "31"}, typed=False)
    assert plan.body == {"age": 40}


def test_bad_field_name_is_a_cell_error() -> None:
    with pytest.raises(CellError):
        plan_patch(PROFILE, {"location..city": "x"}, typed=False)


def test_readback_checks_every_sent_field() -> None:
    plan = plan_patch(PROFILE, {"phone": "0044", "location.city": "Lyon"}, typed=False)
    good = {**PROFILE, "phone": "0044", "location": {"city": "Lyon", "zipCode": "75011"}}
    assert check_readback(plan, good) == {}
    bad = {**good, "phone": "44"}
    assert check_readback(plan, bad) == {"phone": ["0044", "44"]}


def test_same_distinguishes_bool_from_int_and_str_from_int() -> None:
    assert same(1, 1.0)
    assert not same(True, 1)
    assert not same("1", 1)
    assert same({"a": [1, None]}, {"a": [1.0, None]})

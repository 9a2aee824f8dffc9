"""The tolerant reading of GET /teams/get-all-teams (an undocumented shape) as a pure function:
every accepted shape gives the teams in order, every unreadable one a one-line error naming
what was missing."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reconciler.errors import LiveStateError
from reconciler.spike.teams import SpikeTeam, parse_teams

WHERE = "GET /teams/get-all-teams"
NO_LIST = (
    f"{WHERE}: no list of teams in the answer (looked for a list, or one under 'teams' or 'data')"
)
ITEMS = [{"_id": "t1", "name": "Payments"}, {"_id": "t2", "name": "Platform"}]
TEAMS = [SpikeTeam("t1", "Payments"), SpikeTeam("t2", "Platform")]


def message(body: Any) -> str:
    with pytest.raises(LiveStateError) as caught:
        parse_teams(body)
    return str(caught.value)


@pytest.mark.parametrize(
    "body",
    [
        ITEMS,
        {"teams": ITEMS},
        {"data": ITEMS},
        {"success": True, "data": ITEMS, "total": 2},
        {"data": {"teams": ITEMS}},
        {"data": {"data": ITEMS}},
        {"teams": {"data": ITEMS}},
        {"result": {}, "data": {"teams": ITEMS, "count": 2}},
        # `teams` is looked at before `data`, a list before a nested one.
        {"data": [{"_id": "other"}], "teams": ITEMS},
        {"teams": ITEMS, "data": {"teams": [{"_id": "other"}]}},
        {"data": ITEMS, "teams": {"teams": [{"_id": "other"}]}},
    ],
    ids=repr,
)
def test_accepted_shapes(body: Any) -> None:
    assert parse_teams(body) == TEAMS


def test_item_fields_id_name_title_and_extras() -> None:
    body = [
        {"id": "a", "title": "Search", "members": [1, 2]},
        {"_id": "b", "id": "ignored", "name": "Named", "title": "ignored"},
        {"_id": "c"},
        {"_id": "", "id": "d", "name": "", "title": "From title"},
        {"_id": 42, "name": 7},
        {"_id": None, "id": "e", "name": None},
    ]
    assert parse_teams(body) == [
        SpikeTeam("a", "Search"),
        SpikeTeam("b", "Named"),
        SpikeTeam("c", None),
        SpikeTeam("d", "From title"),
        SpikeTeam("42", None),
        SpikeTeam("e", None),
    ]


def test_an_empty_list_is_no_teams() -> None:
    assert parse_teams([]) == []
    assert parse_teams({"teams": []}) == []
    assert parse_teams({"data": {"teams": []}}) == []


@pytest.mark.parametrize(
    "body",
    [
        None,
        {},
        "teams",
        42,
        {"message": "ok"},
        {"teams": None},
        {"teams": "t1"},
        {"team": ITEMS},
        {"items": ITEMS},
        # Nested one level only: two is a guess.
        {"data": {"data": {"teams": ITEMS}}},
        {"data": {"items": ITEMS}},
    ],
    ids=repr,
)
def test_no_list_is_an_error_naming_where_it_looked(body: Any) -> None:
    assert message(body) == NO_LIST


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (
            [{"_id": "t1"}, {"name": "Payments"}],
            f"{WHERE}: item 2 of the list of teams ('Payments') has no id "
            "(looked for '_id' or 'id': a non-empty string or a number)",
        ),
        (
            {"teams": [{"uuid": "x", "title": "Ops"}]},
            f"{WHERE}: item 1 of the list of teams ('Ops') has no id "
            "(looked for '_id' or 'id': a non-empty string or a number)",
        ),
        (
            {"data": [{"_id": "", "id": None}]},
            f"{WHERE}: item 1 of the list of teams has no id "
            "(looked for '_id' or 'id': a non-empty string or a number)",
        ),
        (
            [{"_id": True}],
            f"{WHERE}: item 1 of the list of teams has no id "
            "(looked for '_id' or 'id': a non-empty string or a number)",
        ),
        (
            [{"_id": {"$oid": "64b7"}}],
            f"{WHERE}: item 1 of the list of teams has no id "
            "(looked for '_id' or 'id': a non-empty string or a number)",
        ),
        (["t1"], f"{WHERE}: item 1 of the list of teams is not an object (a string)"),
        ([{"_id": "t1"}, None], f"{WHERE}: item 2 of the list of teams is not an object (null)"),
        ([[]], f"{WHERE}: item 1 of the list of teams is not an object (a list)"),
        ([3], f"{WHERE}: item 1 of the list of teams is not an object (a number)"),
        ([False], f"{WHERE}: item 1 of the list of teams is not an object (a boolean)"),
    ],
)
def test_an_unreadable_team_is_an_error_naming_it(body: Any, expected: str) -> None:
    assert message(body) == expected


def test_a_name_in_an_error_is_escaped_and_cut() -> None:
    text = message([{"name": "evil\n::error::" + "x" * 100}])
    assert "\n" not in text
    assert "'evil\\n::error::xxx" in text
    assert "...) has no id" in text


# --------------------------------------------------------------------------------------------
# Properties: any accepted wrapping of any list of teams reads back as those teams.

#: A fixed alphabet (with a newline, a space and a bidi control): no Unicode table to build.
_text = "ab9- é\n\u202e_"
_ids = st.one_of(st.text(_text, min_size=1, max_size=12), st.integers(-(10**6), 10**6))
_names = st.one_of(st.none(), st.text(_text, min_size=1, max_size=12))
_extras = st.dictionaries(
    st.sampled_from(["members", "createdAt", "slug", "count"]),
    st.one_of(st.none(), st.integers(), st.text(_text, max_size=4)),
    max_size=2,
)


@st.composite
def team_items(draw: st.DrawFn) -> tuple[dict[str, Any], SpikeTeam]:
    """One item as Spike might send it, and the team it must read as."""
    team_id, name = draw(_ids), draw(_names)
    item: dict[str, Any] = draw(_extras)
    item[draw(st.sampled_from(["_id", "id"]))] = team_id
    if name is not None:
        item[draw(st.sampled_from(["name", "title"]))] = name
    return item, SpikeTeam(str(team_id), name)


def wrappings(items: list[Any]) -> st.SearchStrategy[Any]:
    outer = st.sampled_from(["teams", "data"])
    return st.one_of(
        st.just(items),
        st.builds(lambda k, extra: {**extra, k: items}, outer, _extras),
        st.builds(lambda k, j: {k: {j: items}}, outer, outer),
    )


@settings(max_examples=200)
@given(
    st.lists(team_items(), max_size=6).flatmap(
        lambda pairs: st.tuples(st.just(pairs), wrappings([i for i, _ in pairs]))
    )
)
def test_any_accepted_wrapping_reads_back(case: tuple[list[tuple[Any, SpikeTeam]], Any]) -> None:
    pairs, body = case
    assert parse_teams(body) == [team for _, team in pairs]


@settings(max_examples=200)
@given(
    st.lists(team_items(), min_size=1, max_size=5),
    st.data(),
)
def test_any_team_without_an_id_is_named_by_its_place(
    pairs: list[tuple[dict[str, Any], SpikeTeam]], data: st.DataObject
) -> None:
    where = data.draw(st.integers(0, len(pairs) - 1))
    items = [dict(item) for item, _ in pairs]
    items[where].pop("_id", None)
    items[where].pop("id", None)
    text = message(data.draw(wrappings(items)))
    assert text.startswith(f"{WHERE}: item {where + 1} of the list of teams")
    assert text.endswith("has no id (looked for '_id' or 'id': a non-empty string or a number)")


_json = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.text(_text, max_size=5)),
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.dictionaries(
            st.sampled_from(["teams", "data", "_id", "id", "name", "x"]), inner, max_size=3
        ),
    ),
    max_leaves=10,
)


@settings(max_examples=300)
@given(_json)
def test_any_json_reads_as_teams_or_fails_with_one_line(body: Any) -> None:
    try:
        teams = parse_teams(body)
    except LiveStateError as exc:
        assert "\n" not in str(exc)
        assert str(exc).startswith(f"{WHERE}: ")
    else:
        assert all(isinstance(t.id, str) and t.id for t in teams)

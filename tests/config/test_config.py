"""The project file, reconcile.yaml (docs/teams.md, "reconcile.yaml"): every malformed file is
an exact FILE:LINE:COLUMN message, all of a file's problems at once; a valid file loads with
its defaults filled in and its paths relative to its folder; `locate` finds it from --config,
RECONCILE_CONFIG or the working directory; `team_of` and `assign` say which team owns a file.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from helpers import cli

from reconciler.config import (
    ALL_REVERT,
    DEFAULT_API_KEY_ENV,
    Defaults,
    Project,
    TeamConfig,
    Unsafe,
    assign,
    find_project,
    load_project,
    locate,
    team_of,
)
from reconciler.errors import ReconcileError, StateFileError

NAME_RULE = (
    "names are lowercase letters and digits, groups joined by single hyphens, at most 32 characters"
)
TEAM_KEYS = "(valid: team_id, paths, journal, api_key_env, drift)"
KEY_VARIABLE = (
    "api_key_env must name an environment variable starting with SPIKE_ "
    "(then letters, digits and _): the key variable is never another secret"
)
POLICIES = "one of revert, warn, accept"
BOMB = """\
a: &a ["x", "x", "x", "x", "x", "x", "x", "x", "x", "x"]
b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]
c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]
d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]
version: 1
"""

#: name -> (the file's text, its problems exactly as printed).
MALFORMED: dict[str, tuple[str | bytes, list[str]]] = {
    "empty": ("", ["1:1: the file is empty; it needs at least 'version: 1'"]),
    "only-comments": (
        "# nothing yet\n",
        ["1:1: the file is empty; it needs at least 'version: 1'"],
    ),
    "not-a-mapping": (
        "- version: 1\n",
        ["1:1: the top level must be a mapping with 'version: 1'"],
    ),
    "a-scalar": ("reconcile\n", ["1:1: the top level must be a mapping with 'version: 1'"]),
    "version-missing": (
        "teams: {}\n",
        ["1:1: version is missing; this file's format is 'version: 1'"],
    ),
    "version-2": ("version: 2\n", ["1:10: version must be 1"]),
    "version-boolean": ("version: true\n", ["1:10: version must be 1"]),
    "version-string": ("version: '1'\n", ["1:10: version must be 1"]),
    "unknown-top-key": (
        "version: 1\nteam:\n  a: {team_id: x}\n",
        [
            "2:1: unknown key 'team' at the top level; did you mean 'teams'? "
            "(valid: version, defaults, teams, approvals)"
        ],
    ),
    "unknown-key-no-hint": (
        "version: 1\nzzz: 1\n",
        ["2:1: unknown key 'zzz' at the top level (valid: version, defaults, teams, approvals)"],
    ),
    "syntax": (
        "version: 1\nteams:\n  a: {team_id: [}\n",
        ["3:17: YAML syntax: did not find expected node content"],
    ),
    "syntax-indentation": (
        "version: 1\nteams:\n  a:\n    team_id: x\n   paths: []\n",
        ["5:4: YAML syntax: did not find expected key"],
    ),
    "duplicate-key": (
        "version: 1\nteams:\n  a:\n    team_id: x\n  b:\n    team_id: y\n  a:\n    team_id: z\n",
        ["7:3: duplicate key 'a' (first at line 3)"],
    ),
    "duplicate-top-key": (
        "version: 1\nversion: 1\n",
        ["2:1: duplicate key 'version' (first at line 1)"],
    ),
    "not-utf8": (b"version: 1\nteams:\n  caf\xe9: {team_id: x}\n", ["3:6: file is not UTF-8 text"]),
    "alias-bomb": (
        BOMB,
        [
            "2:8: YAML aliases expand to 12351 nodes; "
            "at most 1000 more than the 21 written are allowed"
        ],
    ),
    "too-deep": (
        "version: 1\nteams:\n  a: " + "[" * 60 + "]" * 60 + "\n",
        ["3:54: YAML nested more than 50 levels deep (reconcile.yaml needs 4)"],
    ),
    "too-deep-through-aliases": (
        "version: 1\nl0: &l0 []\n"
        + "".join(f"l{n}: &l{n} {'[' * 6}*l{n - 1}{']' * 6}\n" for n in range(1, 10)),
        ["1:1: YAML nested more than 50 levels deep (reconcile.yaml needs 4)"],
    ),
    "keys-read-as-other-types": (
        "version: 1\ntrue: 1\nteams:\n  null: {team_id: x}\n  1.5: {team_id: y}\n"
        "  b:\n    team_id: z\n    2: x\n",
        [
            "2:1: key true is read as bool True; quote it: 'true'",
            "4:3: key null is read as NoneType None; quote it: 'null'",
            "5:3: key 1.5 is read as float 1.5; quote it: '1.5'",
            f"8:5: unknown key '2' in team b {TEAM_KEYS}",
        ],
    ),
    "defaults-not-a-mapping": (
        "version: 1\ndefaults: 100\n",
        ["2:11: defaults must be a mapping (batch_size, parallelism, unsafe, drift)"],
    ),
    "defaults-values": (
        "version: 1\n"
        "defaults:\n"
        "  batch_size: 0\n"
        "  parallelism: 2.5\n"
        "  unsafe: {min_incidents: -1, max_share: 0}\n",
        [
            "3:15: defaults.batch_size must be a whole number, 1 or more",
            "4:16: defaults.parallelism must be a whole number, 1 or more",
            "5:27: defaults.unsafe.min_incidents must be a whole number, 0 or more",
            "5:42: defaults.unsafe.max_share must be a number greater than 0 and at most 1",
        ],
    ),
    "defaults-strict-types": (
        "version: 1\n"
        "defaults:\n"
        "  batch_size: '100'\n"
        "  parallelism: true\n"
        "  unsafe:\n"
        "    max_share: 1.5\n"
        "    min_incidents: 3.0\n",
        [
            "3:15: defaults.batch_size must be a whole number, 1 or more",
            "4:16: defaults.parallelism must be a whole number, 1 or more",
            "6:16: defaults.unsafe.max_share must be a number greater than 0 and at most 1",
            "7:20: defaults.unsafe.min_incidents must be a whole number, 0 or more",
        ],
    ),
    "defaults-unknown-keys": (
        "version: 1\ndefaults:\n  batchsize: 10\n  unsafe: {max_shares: 0.5}\n",
        [
            "3:3: unknown key 'batchsize' in defaults; did you mean 'batch_size'? "
            "(valid: batch_size, parallelism, unsafe, drift)",
            "4:12: unknown key 'max_shares' in defaults.unsafe; did you mean 'max_share'? "
            "(valid: min_incidents, max_share)",
        ],
    ),
    "unsafe-not-a-mapping": (
        "version: 1\ndefaults:\n  unsafe: 0.3\n",
        ["3:11: defaults.unsafe must be a mapping (min_incidents, max_share)"],
    ),
    "drift": (
        "version: 1\n"
        "defaults:\n"
        "  drift: {status: ignore, priorty: warn}\n"
        "teams:\n"
        "  a:\n"
        "    team_id: x\n"
        "    drift: {escalations: warn, severity: Revert}\n"
        "  b:\n"
        "    team_id: y\n"
        "    drift: [status]\n",
        [
            f"3:19: defaults.drift.status must be {POLICIES}",
            "3:27: unknown key 'priorty' in defaults.drift; did you mean 'priority'? "
            "(valid: status, priority, severity, public_sharing)",
            "7:13: unknown key 'escalations' in the drift of team a "
            "(valid: status, priority, severity, public_sharing)",
            f"7:42: team a: drift.severity must be {POLICIES}",
            "10:12: team b: drift must be a mapping of field -> policy (revert, warn, accept)",
        ],
    ),
    "teams-named-like-keys": (
        "version: 1\n"
        "teams:\n"
        "  drift: {drift: {status: warn}}\n"
        "  paths: {team_id: [x], drift: {state: warn}}\n"
        "  teams: 7\n",
        [
            "3:3: team drift: team_id is required (the Spike team's id)",
            "4:20: team paths: team_id must be a string; quote an id YAML reads as a number",
            "4:33: unknown key 'state' in the drift of team paths; did you mean 'status'? "
            "(valid: status, priority, severity, public_sharing)",
            "5:10: team teams must be a mapping with at least team_id",
        ],
    ),
    "teams-not-a-mapping": (
        "version: 1\nteams: [payments]\n",
        ["2:8: teams must be a mapping of team name -> team"],
    ),
    "team-names": (
        "version: 1\n"
        "teams:\n"
        "  Payments: {team_id: a}\n"
        "  pay_ments: {team_id: b}\n"
        "  -payments: {team_id: c}\n"
        f"  {'a' * 33}: {{team_id: d}}\n"
        f"  {'a' * 32}: {{team_id: e}}\n"
        "  2024: {team_id: f}\n",
        [
            f"3:3: invalid team name 'Payments': {NAME_RULE}",
            f"4:3: invalid team name 'pay_ments': {NAME_RULE}",
            f"5:3: invalid team name '-payments': {NAME_RULE}",
            f"6:3: invalid team name '{'a' * 33}': {NAME_RULE}",
        ],
    ),
    "team-not-a-mapping": (
        "version: 1\nteams:\n  payments:\n  search: 64b7f0c2\n",
        [
            "3:3: team payments must be a mapping with at least team_id",
            "4:11: team search must be a mapping with at least team_id",
        ],
    ),
    "team-id": (
        "version: 1\n"
        "teams:\n"
        "  a:\n"
        "    paths: [teams/a]\n"
        "  b:\n"
        "    team_id: 1234\n"
        "  c:\n"
        "    team_id: 'two words'\n"
        "  d:\n"
        "    team_id: ''\n"
        "  e:\n"
        '    team_id: "caf\\u00e9"\n'
        "  f:\n"
        '    team_id: "x\\ny"\n',
        [
            "3:3: team a: team_id is required (the Spike team's id)",
            "6:14: team b: team_id must be a string; quote an id YAML reads as a number",
            "8:14: team c: team_id must be printable ASCII without spaces "
            "(it is sent as the x-team-id header)",
            "10:14: team d: team_id must be printable ASCII without spaces "
            "(it is sent as the x-team-id header)",
            "12:14: team e: team_id must be printable ASCII without spaces "
            "(it is sent as the x-team-id header)",
            "14:14: team f: team_id must be printable ASCII without spaces "
            "(it is sent as the x-team-id header)",
        ],
    ),
    "team-fields": (
        "version: 1\n"
        "teams:\n"
        "  a:\n"
        "    team_id: x\n"
        "    paths: teams/a\n"
        "    journal: ''\n"
        "    api_key_env: 1KEY\n"
        "    path: teams/a\n"
        "  b:\n"
        "    team_id: y\n"
        "    paths:\n"
        "      - teams/b\n"
        "      - ''\n"
        "      - 7\n"
        "    journal: [a.jsonl]\n"
        "    api_key_env: SPIKE-KEY\n"
        "  c:\n"
        "    team_id: z\n"
        "    paths: []\n",
        [
            "5:12: team a: paths must be a list of one or more folders or files",
            "6:14: team a: journal must be a file name or a postgresql:// URL",
            f"7:18: team a: {KEY_VARIABLE}",
            f"8:5: unknown key 'path' in team a; did you mean 'paths'? {TEAM_KEYS}",
            "13:9: team b: paths[1] must be a folder or file name",
            "14:9: team b: paths[2] must be a folder or file name",
            "15:14: team b: journal must be a file name or a postgresql:// URL",
            f"16:18: team b: {KEY_VARIABLE}",
            "19:12: team c: paths must be a list of one or more folders or files",
        ],
    ),
    # A line in a pull request must never send another secret to Spike's URL.
    "key-variable": (
        "version: 1\n"
        "teams:\n"
        "  a: {team_id: x, api_key_env: GITHUB_TOKEN}\n"
        "  b: {team_id: y, api_key_env: RECONCILE_PLAN_KEY}\n"
        "  c: {team_id: z, api_key_env: PGPASSWORD}\n"
        "  d: {team_id: w, api_key_env: spike_api_key}\n"
        "  e: {team_id: v, api_key_env: SPIKE_API_KEY_EU}\n",
        [
            f"3:32: team a: {KEY_VARIABLE}",
            f"4:32: team b: {KEY_VARIABLE}",
            f"5:32: team c: {KEY_VARIABLE}",
            f"6:32: team d: {KEY_VARIABLE}",
        ],
    ),
    "same-team-id": (
        "version: 1\n"
        "teams:\n"
        "  search:\n"
        "    team_id: 64b7f0c2\n"
        "  payments:\n"
        "    team_id: 64b7f0c2\n"
        "  platform:\n"
        "    team_id: 64b7f0c2\n",
        [
            "6:14: teams search and payments have the same team_id 64b7f0c2; "
            "each team needs its own",
            "8:14: teams search and platform have the same team_id 64b7f0c2; "
            "each team needs its own",
        ],
    ),
    "same-journal": (
        "version: 1\n"
        "teams:\n"
        "  a:\n"
        "    team_id: x\n"
        "    journal: .reconcile/shared.jsonl\n"
        "  b:\n"
        "    team_id: y\n"
        "    journal: ./.reconcile/../.reconcile/shared.jsonl\n"
        "  c:\n"
        "    team_id: z\n"
        "    journal: postgresql://u:hunter2@db/spike\n"
        "  d:\n"
        "    team_id: w\n"
        # The same database and namespace (c's is its name, by default), as another user with
        # other parameters.
        "    journal: postgresql://w@db/spike?namespace=c&sslmode=require\n"
        "  g:\n"
        "    team_id: t\n"
        "    journal: postgresql://u:hunter2@db/spike?namespace=g\n"
        "  e:\n"
        "    team_id: v\n"
        "    journal: .reconcile/f.jsonl\n"
        "  f:\n"
        "    team_id: u\n",
        [
            "8:14: teams a and b have the same journal; each team needs its own",
            "14:14: teams c and d have the same journal; each team needs its own",
            # f's journal is the default one, which e names: at f's name.
            "21:3: teams e and f have the same journal; each team needs its own",
        ],
    ),
}


@pytest.fixture
def here(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path


def write(folder: Path, text: str | bytes, name: str = "reconcile.yaml") -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)
    return path


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_files_print_every_problem_at_its_place(here: Path, case: str) -> None:
    text, expected = MALFORMED[case]
    write(here, text)
    with pytest.raises(StateFileError) as caught:
        load_project("reconcile.yaml")
    assert str(caught.value).splitlines() == [f"reconcile.yaml:{line}" for line in expected]


def test_problems_name_the_file_as_given(here: Path) -> None:
    write(here / "ops", "version: 3\n")
    with pytest.raises(StateFileError) as caught:
        load_project("ops/reconcile.yaml")
    assert str(caught.value) == "ops/reconcile.yaml:1:10: version must be 1"


def test_an_unreadable_file_is_a_whole_file_problem(here: Path) -> None:
    (here / "reconcile.yaml").mkdir()
    with pytest.raises(StateFileError) as caught:
        load_project("reconcile.yaml")
    assert str(caught.value) == "reconcile.yaml: cannot read: Is a directory"


def test_a_team_named_by_a_number_is_a_name_like_any_other(here: Path) -> None:
    write(here, "version: 1\nteams:\n  2024: {team_id: x}\n  '2025': {team_id: y}\n")
    project = load_project("reconcile.yaml")
    assert list(project.teams) == ["2024", "2025"]
    assert project.teams["2024"].paths == ("teams/2024",)


def test_a_number_and_its_quoted_spelling_are_one_key(here: Path) -> None:
    write(here, "version: 1\nteams:\n  2024: {team_id: x}\n  '2024': {team_id: y}\n")
    with pytest.raises(StateFileError) as caught:
        load_project("reconcile.yaml")
    assert str(caught.value) == (
        "reconcile.yaml:4:3: key 2024 is written twice, once as a number and once quoted"
    )


# ---------------------------------------------------------------------------------------------
# Valid files

FULL = """\
# yaml-language-server: $schema=schema/reconcile.json
version: 1
defaults:
  batch_size: 100
  parallelism: 4
  unsafe: {min_incidents: 20, max_share: 1}
  drift: {status: warn, priority: accept}
teams:
  platform:
    team_id: 64b7f0c2e1d3a4b5c6d7e8fa
  payments:
    team_id: 64b7f0c2e1d3a4b5c6d7e8f9
    paths: [teams/payments, shared/payments.yaml]
    journal: postgresql://spike@db:5432/reconcile?namespace=payments
    api_key_env: SPIKE_API_KEY_EU
    drift: {status: revert, severity: warn}
"""


def test_a_minimal_file_is_every_default(here: Path) -> None:
    write(here, "version: 1\n")
    assert load_project("reconcile.yaml") == Project(path="reconcile.yaml")
    assert Project(path="x").defaults == Defaults(
        batch_size=None, parallelism=None, unsafe=Unsafe(10, 0.3), drift=ALL_REVERT
    )


def test_empty_sections_are_their_defaults(here: Path) -> None:
    write(here, "version: 1\ndefaults:\n  unsafe:\n  drift:\n  batch_size:\nteams:\n")
    assert load_project("reconcile.yaml") == Project(path="reconcile.yaml")


def test_a_full_file_loads_with_teams_in_name_order(here: Path) -> None:
    write(here, FULL)
    project = load_project("reconcile.yaml")
    assert project.defaults == Defaults(
        batch_size=100,
        parallelism=4,
        unsafe=Unsafe(min_incidents=20, max_share=1.0),
        drift={
            "status": "warn",
            "priority": "accept",
            "severity": "revert",
            "public_sharing": "revert",
        },
    )
    assert type(project.defaults.unsafe.max_share) is float
    assert list(project.teams) == ["payments", "platform"]
    assert project.teams["payments"] == TeamConfig(
        name="payments",
        team_id="64b7f0c2e1d3a4b5c6d7e8f9",
        paths=("teams/payments", "shared/payments.yaml"),
        journal="postgresql://spike@db:5432/reconcile?namespace=payments",
        api_key_env="SPIKE_API_KEY_EU",
        # defaults.drift, then the team's own
        drift={
            "status": "revert",
            "priority": "accept",
            "severity": "warn",
            "public_sharing": "revert",
        },
    )
    assert project.teams["platform"] == TeamConfig(
        name="platform",
        team_id="64b7f0c2e1d3a4b5c6d7e8fa",
        paths=("teams/platform",),
        journal=".reconcile/platform.jsonl",
        api_key_env=DEFAULT_API_KEY_ENV,
        drift=project.defaults.drift,
    )
    # The field order of the drift maps is DRIFT_FIELDS', whatever the file's.
    assert list(project.teams["payments"].drift) == [
        "status",
        "priority",
        "severity",
        "public_sharing",
    ]


def test_paths_are_relative_to_the_files_folder(here: Path) -> None:
    write(here / "ops", FULL)
    project = load_project("ops/reconcile.yaml")
    assert project.path == "ops/reconcile.yaml"
    assert project.teams["payments"].paths == ("ops/teams/payments", "ops/shared/payments.yaml")
    assert project.teams["platform"].paths == ("ops/teams/platform",)
    assert project.teams["platform"].journal == "ops/.reconcile/platform.jsonl"
    # A URL is not a path.
    assert project.teams["payments"].journal.startswith("postgresql://spike@db")


def test_absolute_and_parent_paths(here: Path) -> None:
    write(
        here / "ops",
        "version: 1\nteams:\n  a:\n    team_id: x\n    paths: [/srv/states, ../states]\n"
        "    journal: /var/lib/a.jsonl\n",
    )
    team = load_project(str(here / "ops" / "reconcile.yaml")).teams["a"]
    assert team.paths == ("/srv/states", str(here / "states"))
    assert team.journal == "/var/lib/a.jsonl"


def test_paths_stay_as_written_when_the_folder_is_the_working_directory(here: Path) -> None:
    write(here, "version: 1\nteams:\n  a:\n    team_id: x\n    paths: [./teams/a/]\n")
    for spelled in ("reconcile.yaml", "./reconcile.yaml", str(here / "reconcile.yaml")):
        team = load_project(spelled).teams["a"]
        assert team.paths == ("./teams/a/",)
        assert team.journal == ".reconcile/a.jsonl"


def test_aliases_that_repeat_a_little_are_fine(here: Path) -> None:
    write(
        here,
        "version: 1\nteams:\n  a: {team_id: x, drift: &quiet {status: warn}}\n"
        "  b: {team_id: y, drift: *quiet}\n",
    )
    project = load_project("reconcile.yaml")
    assert project.teams["b"].drift["status"] == "warn"


# ---------------------------------------------------------------------------------------------
# Finding the file: --config, RECONCILE_CONFIG, the working directory


def test_locate_prefers_the_flag_then_the_variable_then_the_working_directory(
    here: Path,
) -> None:
    assert locate(None, {}) is None
    assert find_project(None, {}) is None
    write(here, "version: 1\n")
    write(here / "ops", "version: 1\nteams: {a: {team_id: x}}\n")
    write(here / "eu", "version: 1\nteams: {b: {team_id: y}}\n")
    assert locate(None, {}) == "reconcile.yaml"
    assert locate(None, {"RECONCILE_CONFIG": "ops/reconcile.yaml"}) == "ops/reconcile.yaml"
    assert locate("eu/reconcile.yaml", {"RECONCILE_CONFIG": "ops/reconcile.yaml"}) == (
        "eu/reconcile.yaml"
    )
    assert find_project(None, {}) == Project(path="reconcile.yaml")
    found = find_project(None, {"RECONCILE_CONFIG": "ops/reconcile.yaml"})
    assert found is not None and list(found.teams) == ["a"]
    found = find_project("eu/reconcile.yaml", {"RECONCILE_CONFIG": "ops/reconcile.yaml"})
    assert found is not None and found.teams["b"].paths == ("eu/teams/b",)


def test_locate_reads_the_process_environment_by_default(
    here: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(here / "ops", "version: 1\n")
    monkeypatch.setenv("RECONCILE_CONFIG", "ops/reconcile.yaml")
    assert locate() == "ops/reconcile.yaml"


def test_a_named_file_must_exist(here: Path) -> None:
    write(here, "version: 1\n")  # not a fallback for a file named on purpose
    with pytest.raises(ReconcileError, match=r"^--config: nope.yaml: no such file$"):
        locate("nope.yaml", {})
    with pytest.raises(ReconcileError, match=r"^RECONCILE_CONFIG: nope.yaml: no such file$"):
        find_project(None, {"RECONCILE_CONFIG": "nope.yaml"})


def test_find_project_reports_the_files_problems(here: Path) -> None:
    write(here, "version: 1\nteams: {Bad: {team_id: x}}\n")
    with pytest.raises(StateFileError, match=r"^reconcile.yaml:2:9: invalid team name 'Bad'"):
        find_project(None, {})


# ---------------------------------------------------------------------------------------------
# Which team owns a file

OWNERS = """\
version: 1
teams:
  payments:
    team_id: x
  search:
    team_id: y
    paths: [teams/search, shared/search.yaml]
  overlap:
    team_id: z
    paths: [teams/payments/legacy]
"""


def test_team_of_compares_resolved_paths(here: Path) -> None:
    write(here, OWNERS)
    project = load_project("reconcile.yaml")
    assert team_of(project, "teams/payments/a.yaml") == ["payments"]
    assert team_of(project, here / "teams" / "payments" / "a.yaml") == ["payments"]
    assert team_of(project, "teams/search/../payments/a.yaml") == ["payments"]
    assert team_of(project, "./shared/search.yaml") == ["search"]
    assert team_of(project, "teams/payments/legacy/old.yaml") == ["overlap", "payments"]
    assert team_of(project, "shared/other.yaml") == []
    # A folder holds what is under it, not what merely starts with its name.
    assert team_of(project, "teams/payments-eu/a.yaml") == []
    assert team_of(project, "teams/search.yaml") == []


def test_team_of_follows_symlinks(here: Path) -> None:
    write(here, OWNERS)
    (here / "teams" / "payments").mkdir(parents=True)
    os.symlink(here / "teams" / "payments", here / "link")
    assert team_of(load_project("reconcile.yaml"), "link/a.yaml") == ["payments"]


def test_assign_gives_every_team_its_files(here: Path) -> None:
    write(here, OWNERS)
    project = load_project("reconcile.yaml")
    files = [Path("teams/search/b.yaml"), Path("teams/payments/a.yaml"), Path("shared/search.yaml")]
    assert assign(project, files) == {
        "overlap": [],  # every team, so that one without files still plans its forgets
        "payments": [Path("teams/payments/a.yaml")],
        "search": [Path("teams/search/b.yaml"), Path("shared/search.yaml")],
    }
    assert assign(project, ["teams/payments/a.yaml"])["payments"] == ["teams/payments/a.yaml"]


def test_assign_refuses_files_of_two_teams_or_of_none(here: Path) -> None:
    write(here, OWNERS)
    project = load_project("reconcile.yaml")
    with pytest.raises(StateFileError) as caught:
        assign(
            project,
            ["teams/payments/legacy/old.yaml", "states/a.yaml", "teams/payments/a.yaml"],
        )
    assert str(caught.value).splitlines() == [
        "states/a.yaml: this file is under no team's paths in reconcile.yaml",
        "teams/payments/legacy/old.yaml: this file is under the paths of two teams: "
        "overlap, payments",
    ]


# ---------------------------------------------------------------------------------------------
# The schema (docs/teams.md, "reconcile.yaml": Editors)

REPO = Path(__file__).resolve().parents[2]


def test_schema_config_prints_the_bundled_project_file_schema() -> None:
    result = cli("schema", "--config")
    assert (result.code, result.stderr) == (0, "")
    assert result.stdout == (REPO / "schema" / "reconcile.json").read_text()
    schema = json.loads(result.stdout)
    assert schema["required"] == ["version"]
    assert set(schema["properties"]) == {"version", "defaults", "teams", "approvals"}
    teams = schema["properties"]["teams"]["anyOf"][0]
    # Every name is checked, not only those matching a pattern.
    assert teams["propertyNames"] == {"pattern": "^[a-z0-9]+(-[a-z0-9]+)*$", "maxLength": 32}
    assert teams["additionalProperties"] == {"$ref": "#/$defs/Team"}
    team = schema["$defs"]["Team"]
    assert team["additionalProperties"] is False
    assert team["required"] == ["team_id"]
    assert set(team["properties"]) == {"team_id", "paths", "journal", "api_key_env", "drift"}
    drift = schema["$defs"]["DriftPolicies"]["properties"]
    assert list(drift) == ["status", "priority", "severity", "public_sharing"]
    assert {p["enum"] == ["revert", "warn", "accept"] for p in drift.values()} == {True}
    assert schema["$defs"]["UnsafeRule"]["properties"]["max_share"]["default"] == 0.3


def test_schema_without_config_is_still_the_state_files() -> None:
    assert cli("schema").stdout == (REPO / "schema" / "state-file.json").read_text()


def test_the_documented_error_example_is_what_the_loader_says(here: Path) -> None:
    doc = (REPO / "docs" / "teams.md").read_text()
    errors = doc.split("### Errors", 1)[1]
    text = errors.split("```yaml\n", 1)[1].split("```", 1)[0]
    printed = errors.split("```text\n", 1)[1].split("```", 1)[0]
    write(here, text)
    with pytest.raises(StateFileError) as caught:
        load_project("reconcile.yaml")
    assert str(caught.value) + "\n" == printed


def test_a_journal_url_the_journal_refuses_is_left_for_it_to_report(here: Path) -> None:
    # Opening the journal says what is wrong with it (docs/journal.md); here it is only text.
    url = "postgresql://db/spike?namespace=two+words"
    write(here, f"version: 1\nteams:\n  a:\n    team_id: x\n    journal: {url}\n")
    assert load_project("reconcile.yaml").teams["a"].journal == url

"""Shell completion (docs/cli.md "Shell completion"): the scripts bash, zsh and fish source,
and the candidates they are given, asked for as each shell asks (click's `_RECONCILE_COMPLETE`
protocol with COMP_WORDS and COMP_CWORD), through the real entry point.
"""

from __future__ import annotations

import io
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

import pytest
from helpers import RECONCILE

from reconciler import redact
from reconciler.cli import ShownStream, main


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    for name in ("RECONCILE_CONFIG", "RECONCILE_JOURNAL", "_RECONCILE_COMPLETE"):
        monkeypatch.delenv(name, raising=False)


def complete(env: Mapping[str, str]) -> str:
    """What `reconcile` prints for a completion request, in-process through main (whose
    output boundary is what the shells' requests broke), as the shell would read it."""
    from click.testing import CliRunner

    with CliRunner().isolation(env=dict(env)) as (out, err, _):
        with pytest.raises(SystemExit) as exited:  # click ends a completion request with exit
            main([])
        sys.stdout.flush()
    assert exited.value.code == 0, err.getvalue().decode()
    assert err.getvalue() == b""
    return out.getvalue().decode()


@pytest.mark.parametrize(
    ("shell", "marker"),
    [
        ("bash", "complete -o nosort -F _reconcile_completion reconcile"),
        ("zsh", "compdef _reconcile_completion reconcile"),
        ("fish", "complete --no-files --command reconcile"),
    ],
)
def test_each_shell_gets_its_script(shell: str, marker: str) -> None:
    script = complete({"_RECONCILE_COMPLETE": f"{shell}_source"})
    assert marker in script
    assert f"_RECONCILE_COMPLETE={shell}_complete" in script.replace('"', "")


def test_the_installed_command_prints_the_bash_script() -> None:
    shown = subprocess.run(
        [str(RECONCILE)],
        env={"PATH": "/usr/bin:/bin", "_RECONCILE_COMPLETE": "bash_source"},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert shown.stderr == ""
    assert "_reconcile_completion()" in shown.stdout
    assert shown.returncode == 0


def test_bytes_written_to_the_output_are_shown_as_text_and_masked() -> None:
    redact.register("sk-bytes-secret-31f0")
    under = io.StringIO()
    shown = ShownStream(under)
    word = "caf\u00e9 sk-bytes-secret-31f0\n".encode()
    cut = word.index(b"\xa9")  # inside the two bytes of the e with an acute accent
    shown.buffer.write(word[:cut])
    shown.buffer.write(word[cut:])
    shown.buffer.flush()
    assert under.getvalue() == "caf\u00e9 ***\n"


PROJECT = """\
version: 1
teams:
  payments:
    team_id: t-pay
  search:
    team_id: t-search
    paths: [search-states]
"""


def write(path: Path, text: str | bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)


def bash(line: str) -> list[str]:
    """The candidates bash is given for `line` (the word under the cursor is its last one,
    empty when it ends in a space), as `type,value` lines."""
    words = line.split(" ")
    shown = complete(
        {
            "_RECONCILE_COMPLETE": "bash_complete",
            "COMP_WORDS": line,
            "COMP_CWORD": str(len(words) - 1),
        }
    )
    assert shown.endswith("\n")
    return [line for line in shown.splitlines() if line]  # none: one empty line


def test_team_names_come_from_reconcile_yaml(tmp_path: Path) -> None:
    write(tmp_path / "reconcile.yaml", PROJECT)
    assert bash("reconcile plan --team ") == ["plain,payments", "plain,search"]
    assert bash("reconcile show --team s") == ["plain,search"]
    # Repeatable: a team given already is not offered again.
    assert bash("reconcile apply --team search --team ") == ["plain,payments"]


def test_team_names_come_from_the_project_file_config_names(tmp_path: Path) -> None:
    write(tmp_path / "reconcile.yaml", PROJECT)
    write(tmp_path / "other" / "project.yaml", "version: 1\nteams:\n  ledger: {team_id: t}\n")
    assert bash("reconcile drift --config other/project.yaml --team ") == ["plain,ledger"]


def test_incident_ids_come_from_the_state_files(tmp_path: Path) -> None:
    write(tmp_path / "states" / "a.yaml", 'incidents:\n  web-2: {}\n  "116": {}\n  204: {}\n')
    write(tmp_path / "states" / "nested" / "b.yml", "incidents:\n  web-10:\n    priority: p1\n")
    write(tmp_path / "elsewhere" / "c.yaml", "incidents:\n  db-1: {}\n")
    assert bash("reconcile plan --target ") == [
        "plain,116",
        "plain,204",
        "plain,web-10",
        "plain,web-2",
    ]
    assert bash("reconcile apply --target web-1") == ["plain,web-10"]
    assert bash("reconcile refresh --id web-2 --id ") == [
        "plain,116",
        "plain,204",
        "plain,web-10",
    ]


def test_incident_ids_of_teams_come_from_their_paths(tmp_path: Path) -> None:
    write(tmp_path / "proj" / "reconcile.yaml", PROJECT)
    write(tmp_path / "proj" / "teams" / "payments" / "p.yaml", "incidents:\n  pay-1: {}\n")
    write(tmp_path / "proj" / "search-states" / "s.yaml", "incidents:\n  srch-1: {}\n")
    write(tmp_path / "states" / "x.yaml", "incidents:\n  stray-1: {}\n")
    config = "--config proj/reconcile.yaml"
    assert bash(f"reconcile accept {config} --id ") == ["plain,pay-1", "plain,srch-1"]
    assert bash(f"reconcile accept {config} --team search --id ") == ["plain,srch-1"]


def test_broken_files_offer_what_can_be_read_and_never_fail(tmp_path: Path) -> None:
    write(tmp_path / "reconcile.yaml", "teams: [unclosed\n")
    write(tmp_path / "states" / "good.yaml", "incidents:\n  ok-1: {}\n")
    write(tmp_path / "states" / "syntax.yaml", "incidents:\n  bad-1: {status: [\n")
    write(tmp_path / "states" / "latin1.yaml", b"incidents:\n  caf\xe9: {}\n")
    write(tmp_path / "states" / "list.yaml", "- not a mapping\n")
    write(tmp_path / "states" / "list-key.yaml", "incidents:\n  [a, b]: {}\n  no-1: {}\n")
    write(tmp_path / "states" / "odd.yaml", "incidents:\n  true: {}\n  3.5: {}\n  ok-2:\n")
    (tmp_path / "states" / "dir.yaml").mkdir()
    assert bash("reconcile plan --team ") == []  # and the project file's teams are not read
    assert bash("reconcile plan --target ") == ["plain,ok-1", "plain,ok-2"]
    assert bash("reconcile plan --config missing.yaml --team ") == []
    write(tmp_path / "reconcile.yaml", "version: 1\nteams:\n  a: {paths: [nowhere]}\n")
    assert bash("reconcile plan --target ") == []


def test_zsh_and_fish_get_the_candidates_in_their_formats(tmp_path: Path) -> None:
    write(tmp_path / "reconcile.yaml", PROJECT)
    zsh = complete(
        {
            "_RECONCILE_COMPLETE": "zsh_complete",
            "COMP_WORDS": "reconcile plan --team p",
            "COMP_CWORD": "3",
        }
    )
    assert zsh == "plain\npayments\n_\n"
    fish = complete(
        {
            "_RECONCILE_COMPLETE": "fish_complete",
            "COMP_WORDS": "reconcile plan --team ",
            "COMP_CWORD": "",
        }
    )
    assert fish == "plain,payments\nplain,search\n"


def test_bash_completes_through_the_script_it_sources(tmp_path: Path) -> None:
    write(tmp_path / "states" / "a.yaml", "incidents:\n  web-1: {}\n  web-2: {}\n")
    script = """
        eval "$(_RECONCILE_COMPLETE=bash_source reconcile)"
        COMP_WORDS=(reconcile plan --target web-); COMP_CWORD=3
        _reconcile_completion reconcile
        printf '%s\\n' "${COMPREPLY[@]}"
        COMPREPLY=(); COMP_WORDS=(reconcile pl); COMP_CWORD=1
        _reconcile_completion reconcile
        printf '%s\\n' "${COMPREPLY[@]}"
    """
    shown = subprocess.run(
        ["bash", "--norc", "--noprofile", "-c", script],
        env={"PATH": f"{RECONCILE.parent}:/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert shown.stderr == ""
    assert shown.stdout.splitlines() == ["web-1", "web-2", "plan"]


def test_completing_reads_no_model(tmp_path: Path) -> None:
    """Cheap at every Tab: the candidates need neither pydantic nor an HTTP client."""
    write(tmp_path / "reconcile.yaml", PROJECT)
    write(tmp_path / "teams" / "payments" / "p.yaml", "incidents:\n  pay-1: {}\n")
    probe = (
        "import sys\n"
        "from reconciler.cli import main\n"
        "try:\n"
        "    main([])\n"
        "except SystemExit:\n"
        "    pass\n"
        "print(sorted({'pydantic', 'httpx'} & set(sys.modules)), file=sys.stderr)\n"
    )
    shown = subprocess.run(
        [sys.executable, "-c", probe],
        env={
            "_RECONCILE_COMPLETE": "bash_complete",
            "COMP_WORDS": "reconcile plan --team payments --target ",
            "COMP_CWORD": "5",
        },
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert shown.stdout == "plain,pay-1\n"
    assert shown.stderr == "[]\n"

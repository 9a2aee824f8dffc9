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

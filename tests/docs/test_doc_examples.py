"""Every example of README.md and docs/*.md is run and its output compared (docs/contributing.md).

One test per document: its examples run in order, in one shell, in a fresh folder.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from .doc_examples import (
    REPO,
    Block,
    Command,
    commands,
    documents,
    matches,
    normalise,
    parse_blocks,
    problems,
    run_document,
)


@pytest.mark.parametrize("document", documents(), ids=lambda p: str(p.relative_to(REPO)))
def test_the_examples_are_true(document: Path, tmp_path: Path) -> None:
    failures = list(run_document(document, tmp_path, str(document.relative_to(REPO))))
    assert not failures, "\n\n".join(failures)


def _doc(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "page.md"
    path.write_text(text, encoding="utf-8")
    return path


def test_a_wrong_output_sample_fails_naming_its_line(tmp_path: Path) -> None:
    """The README's first example in a temporary copy, its apply sample made wrong."""
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    first = readme.index("```console")
    copy = readme[: readme.index("```\n", first + 3) + 4]
    assert "Apply complete: 36 API calls applied." in copy
    copy = copy.replace(
        "Apply complete: 36 API calls applied.", "Apply complete: 35 API calls applied."
    )
    line = copy[: copy.index("$ reconcile apply plan.json")].count("\n") + 1
    (tmp_path / "run").mkdir()
    failures = list(run_document(_doc(tmp_path, copy), tmp_path / "run", "README.md"))
    assert failures == [
        f"README.md:{line}: `reconcile apply plan.json` printed something else:\n"
        "--- shown in the doc\n+++ printed\n@@ -1 +1 @@\n"
        "-Apply complete: 35 API calls applied.\n+Apply complete: 36 API calls applied."
    ]


def test_a_file_block_is_written_and_an_exit_code_is_checked(tmp_path: Path) -> None:
    page = _doc(
        tmp_path,
        "<!-- file: mine/a.yaml -->\n```yaml\nversion: 1\nincidents:\n"
        "  x-1: {status: triggred}\n```\n\n"
        "```console\n$ reconcile validate mine    # exit 1\n"
        "mine/a.yaml:3:17: incident x-1: status must be one of triggered, acknowledged, resolved\n"
        "...\n$ reconcile validate mine\n```\n",
    )
    (tmp_path / "run").mkdir()
    failures = list(run_document(page, tmp_path / "run", "page.md"))
    assert len(failures) == 1, failures
    assert failures[0].startswith("page.md:12: `reconcile validate mine` exited 1, expected 0")
    assert "mine/a.yaml:3:17: incident x-1: status must be one of" in failures[0]


def test_blocks_that_escape_comparison_are_refused() -> None:
    text = (
        "```sh\nreconcile plan\n```\n\n<!-- not run: needs GitHub -->\n```sh\ngh pr list\n```\n\n"
        "```text\n$ reconcile plan\nNo changes.\n```\n\n<!-- not run: -->\n```bash\nls\n```\n"
    )
    assert problems(parse_blocks(Path("p.md"), text)) == [
        "p.md:1: a ```sh block is not run: make it a ```console block, or put "
        "`<!-- not run: REASON -->` before it",
        "p.md:10: a `$ ` command in a ```text block: make it a ```console block (run and "
        "compared), or mark it not run",
        "p.md:16: `<!-- not run: -->` needs a reason",
    ]


def test_commands_take_continuations_heredocs_and_exit_codes() -> None:
    block = Block(
        Path("p.md"),
        3,
        "console",
        (
            "$ cat > a.json <<'JSON'",
            '{"a": 1}',
            "JSON",
            "$ reconcile plan \\",
            "    --detailed-exitcode    # exit 2",
            "Plan: 1 change",
            "$ true",
        ),
    )
    assert commands(block) == [
        Command(4, "cat > a.json <<'JSON'\n{\"a\": 1}\nJSON", (), 0),
        Command(
            7, "reconcile plan \\\n    --detailed-exitcode    # exit 2", ("Plan: 1 change",), 2
        ),
        Command(10, "true", (), 0),
    ]


def test_normalisations_and_ellipsis() -> None:
    shown = normalise(
        "journal lineage 6538b65a-3ce2-439b-943e-d14e5a55823c at 2026-11-30T13:59:11.776Z  \n"
        "plan sha256:edad… in 0.3 s\n\n"
    )
    printed = normalise(
        "journal lineage 0f7a1c3e-0000-4000-8000-000000000001 at 2027-01-02T03:04:05.006Z\n"
        "plan sha256:0123abcd in 12ms\n"
    )
    assert (
        shown
        == printed
        == [
            "journal lineage <uuid> at <time>",
            "plan sha256:<digest> in <duration>",
        ]
    )
    assert matches(["a", "...", "d"], ["a", "b", "c", "d"])
    assert matches(["a", "...", "b"], ["a", "b"])
    assert not matches(["a", "...", "d"], ["a", "b", "c"])
    assert not matches(["p3 issue"], ["p2 issue"])

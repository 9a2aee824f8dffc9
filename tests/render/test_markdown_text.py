"""Text from files, rules, titles and Spike is shown in markdown as text, never as markup
(docs/trust.md, What a pull request can put in a comment): the one escaping function, a
property over every text, and a pull-request comment of folders named to ping, link and
inject HTML, posted over real loopback HTTP to the GitHub fake."""

from __future__ import annotations

import re
import string
from pathlib import Path

from github_fake import REPO, TOKEN, serve_fake_github
from helpers import cli
from hypothesis import given
from hypothesis import strategies as st

from reconciler.errors import printable
from reconciler.render import markdown_text

PUNCTUATION = set(string.punctuation)
ZWSP = "\u200b"
HOSTILE = [
    "@acme/security-oncall",
    "[LGTM - approved by legal](https://x)",
    "![pwned](https://x/i.png)",
    "<img src=x onerror=alert(1)>",
    "<details>",
    "a|b",
    "`code` and ```fence",
    "# heading",
    "www.example.com",
    "see #12",
]


def unescaped(shown: str) -> str:
    """What a markdown reader shows for `shown`: escapes read, zero-width spaces unseen."""
    return re.sub(r"\\(.)", r"\1", shown).replace(ZWSP, "")


#: Punctuation that opens no markup within a line (left as it is, but never first).
INLINE_SAFE = set("-.:',/=?;%\"")


def assert_only_text(shown: str) -> None:
    """No character of `shown` can open markup, and nothing GitHub links is left whole."""
    assert "\n" not in shown and "\r" not in shown
    assert not shown.startswith((" ", "\t"))  # an indented block
    assert re.match(r"\d+[.)]", shown) is None  # an ordered list
    assert not shown or shown[0] not in PUNCTUATION - {"\\"}  # a list, heading, quote, rule
    at = 0
    while at < len(shown):
        char = shown[at]
        if char == "\\":
            assert shown[at + 1] in PUNCTUATION, shown
            escaped = shown[at + 1]
            at += 2
            if escaped in "@#":  # a mention or a reference needs the name right after it
                assert shown[at] == ZWSP, shown
            continue
        assert char not in PUNCTUATION - INLINE_SAFE, (char, shown)
        at += 1
    assert re.search(r"(?i)www\.", shown) is None  # www. links
    assert "://" not in shown  # scheme:// links


@given(st.text())
def test_escaped_text_forms_no_markup_and_reads_as_the_text(text: str) -> None:
    shown = markdown_text(text)
    assert_only_text(shown)
    assert unescaped(shown) == printable(text)


def test_each_hostile_name_is_escaped() -> None:
    assert markdown_text("@acme/security-oncall") == f"\\@{ZWSP}acme/security-oncall"
    assert markdown_text("[LGTM - approved by legal](https://x)") == (
        f"\\[LGTM - approved by legal\\]\\(https:{ZWSP}//x\\)"
    )
    assert markdown_text("<img src=x>") == "\\<img src=x\\>"
    assert markdown_text("<details>") == "\\<details\\>"
    assert markdown_text("a|b") == "a\\|b"
    assert markdown_text("```") == "\\`\\`\\`"
    assert markdown_text("- item") == "\\- item" and markdown_text("1. item") == "1\\. item"
    assert markdown_text("    code") == f"{ZWSP}    code"
    for name in HOSTILE:
        assert_only_text(markdown_text(name))


def test_a_plan_comment_shows_hostile_folder_names_as_text(tmp_path: Path) -> None:
    """The "was not evaluated" warning of every plan of a file with rules names the file:
    the folders a pull request chose reach the comment as text."""
    states = tmp_path / "states"
    folders = ["@acme/security-oncall", "[LGTM - approved by legal](https:/x)", "<img src=x>"]
    folders += ["<details>", "a|b", "`x`"]
    rule = "rules:\n  r-1:\n    match: {status: [triggered]}\n    set: {status: resolved}\n"
    for n, folder in enumerate(folders):
        (states / folder).mkdir(parents=True)
        (states / folder / f"r{n}.yaml").write_text(rule.replace("r-1", f"r-{n}"))
    # A change, so that the comment is posted (a plan without changes posts none).
    (states / folders[0] / "incidents.yaml").write_text("incidents:\n  x-1: {priority: p2}\n")
    plan = str(tmp_path / "plan.json")
    code, out, err = cli("plan", str(states), "--out", plan, "--format", "markdown")
    assert code == 0, err
    with serve_fake_github() as github:
        variables = {"GITHUB_TOKEN": TOKEN, "GITHUB_API_URL": github.url}
        code, _, err = cli("comment", "--plan", plan, "--repo", REPO, "--pr", "7", env=variables)
        assert code == 0, err
        [comment] = github.ours(7)
    body = comment["body"]
    for markdown in (out, body):
        warnings = [line[2:] for line in markdown.splitlines() if "was not evaluated" in line]
        assert len(warnings) == len(folders)
        for line in warnings:
            assert_only_text(line)
        for n, folder in enumerate(folders):
            path = f"{states}/{folder}/r{n}.yaml"
            said = f"rule r-{n} ({path}) was not evaluated"
            assert any(unescaped(line).startswith(said) for line in warnings), said
        for raw in ("@acme", "<img", "a|b", "[LGTM", "`x`"):  # unescaped, that is
            assert re.search(r"(?<!\\)" + re.escape(raw), markdown) is None, raw
        # The one <details> is the plan's own fold of its calls.
        assert markdown.count("<details>") == markdown.count("<details><summary>1 API call,")


def test_a_plan_of_teams_whose_team_name_is_markup_is_refused_before_github(
    tmp_path: Path,
) -> None:
    """Team names are shown as written (the table, a <details> summary, where escapes are
    not read): a saved plan may only name teams in reconcile.yaml's syntax."""
    import json

    from helpers import write_states

    from reconciler.planfile import digest

    write_states(tmp_path / "teams" / "payments", {"pay-1": {"status": "resolved"}})
    config = tmp_path / "reconcile.yaml"
    config.write_text("version: 1\nteams:\n  payments: {team_id: t-1}\n")
    plan = tmp_path / "plan.json"
    assert cli("plan", "--config", str(config), "--out", str(plan)).code == 0
    body = json.loads(plan.read_text())
    body["teams"] = {"</summary><img src=x>": body["teams"]["payments"]}
    body["plan_digest"] = digest(body)
    plan.write_text(json.dumps(body))
    with serve_fake_github() as github:
        variables = {"GITHUB_TOKEN": TOKEN, "GITHUB_API_URL": github.url}
        code, out, err = cli(
            "comment", "--plan", str(plan), "--repo", REPO, "--pr", "7", env=variables
        )
        assert github.requests == []
    assert (code, out) == (1, "")
    assert f"{plan} (team </summary><img src=x>): not a team name" in err

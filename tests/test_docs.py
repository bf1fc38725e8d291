"""The README and docs/: generated pages are current, links resolve, named tests exist."""

import importlib.util
import re
from pathlib import Path

import pytest

# `paths`: run again from a checkout under an awkward path (tests/test_checkout_path.py)
pytestmark = pytest.mark.paths

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")


def load_script(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def load_options_script():
    return load_script("options_table")


def prose(text: str) -> str:
    """The text outside fenced code blocks and inline code, where a markdown link is a link."""
    text = re.sub(r"^```.*?^```", "", text, flags=re.S | re.M)
    return re.sub(r"`[^`\n]*`", "", text)


def anchors(path: Path) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces become hyphens."""
    headings = re.findall(r"^#{1,6}\s+(.+?)\s*$", re.sub(r"^```.*?^```", "", path.read_text(), flags=re.S | re.M),
                          flags=re.M)
    return {re.sub(r"[^\w\- ]", "", h.replace("`", "").lower()).replace(" ", "-") for h in headings}


def test_options_page_is_current():
    script = load_options_script()
    assert script.OPTIONS_PAGE.read_text() == script.render(), (
        f"docs/options.md is out of date with the option dataclasses: run `{script.COMMAND}` and commit it")


def test_formats_table_is_current():
    script = load_script("formats_table")
    page = script.PAGE.read_text()
    assert page == script.render(page), (
        f"the format table of docs/data-formats.md is out of date with the registry: run `{script.COMMAND}`")
    from tokclf.formats.registry import FORMATS

    assert all(f"`{fmt.name}`" in script.table() for fmt in FORMATS)


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_resolve(page):
    broken = []
    for target in LINK.findall(prose(page.read_text())):
        if re.match(r"[a-z][a-z0-9+.-]*:", target):  # https:, mailto: ...
            continue
        path, _, anchor = target.partition("#")
        dest = (page.parent / path).resolve() if path else page
        if not dest.exists() or ROOT.resolve() not in (dest, *dest.parents):
            broken.append(f"{target} (no such file in the repository)")
        elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
            broken.append(f"{target} (no heading #{anchor} in {dest.relative_to(ROOT.resolve())})")
    assert not broken, f"{page.relative_to(ROOT)}: broken links: {broken}"


def test_readme_starts_with_the_two_set_up_commands():
    readme = (ROOT / "README.md").read_text()
    first_block = re.search(r"^```bash\n(.*?)^```", readme, flags=re.S | re.M)
    assert readme.index("```") < readme.index("\n## "), "the set-up commands come before the first section"
    commands = first_block.group(1).strip().splitlines()
    assert len(commands) == 2
    assert commands[0].startswith("bash scripts/setup.sh && ")
    ci = [line for line in (ROOT / ".ci" / "run").read_text().splitlines() if line and not line.startswith("#")]
    assert "bash scripts/setup.sh" in ci and commands[1] == ci[-1], ".ci/run must run the README's test command"


def test_readme_stays_short():
    lines = (ROOT / "README.md").read_text().count("\n")
    assert lines <= 150, f"README.md has {lines} lines; move details to a page in docs/"


def test_every_test_named_in_the_failure_table_exists():
    rows = [line for line in (ROOT / "docs" / "failures.md").read_text().splitlines()
            if line.startswith("| ") and not line.startswith(("| fault", "| ---"))]
    assert len(rows) > 10
    named = [ref for row in rows for ref in re.findall(r"`(test_\w+\.py(?:::\w+)?)`", row.rsplit(" | ", 1)[-1])]
    missing = []
    for ref in named:
        file, _, name = ref.partition("::")
        path = ROOT / "tests" / file
        if not path.is_file() or (name and not re.search(rf"^def {name}\(", path.read_text(), flags=re.M)):
            missing.append(ref)
    assert not missing, f"docs/failures.md names tests that do not exist: {missing}"

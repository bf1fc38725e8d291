"""pyproject.toml: installs requirements.txt's dependencies and declares the `tokclf` console script."""

import importlib
import re
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement

# `paths`: run again from a checkout under an awkward path (tests/test_checkout_path.py)
pytestmark = pytest.mark.paths

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


def parse_requirements(path: Path) -> list[Requirement]:
    """Requirement lines of a requirements file: comments and blank lines dropped, no pip options."""
    reqs = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        line = re.sub(r"(^|\s)#.*", "", line).strip()
        if not line:
            continue
        # setuptools' `file =` dependencies take requirement lines only (no -r, -e, --index-url ...).
        assert not line.startswith("-"), f"{path.name}:{number}: pip option {line!r} cannot be a dependency"
        reqs.append(Requirement(line))
    return reqs


def canonical(reqs) -> list[str]:
    return sorted(str(Requirement(str(r))) for r in reqs)


def test_dependencies_are_read_from_requirements_txt():
    project, tool = PYPROJECT["project"], PYPROJECT["tool"]["setuptools"]
    assert project["name"] == "tokclf"
    assert "dependencies" not in project, "list dependencies only in requirements.txt"
    assert "dependencies" in project["dynamic"]
    assert tool["dynamic"]["dependencies"] == {"file": ["requirements.txt"]}
    assert tool["packages"]["find"]["include"] == ["tokclf*"]


def test_pyproject_dependencies_equal_requirements_txt():
    """What setuptools makes of requirements.txt (comments included) is exactly its requirement lines."""
    expected = canonical(parse_requirements(ROOT / "requirements.txt"))
    assert expected and "torch" in {Requirement(r).name for r in expected}
    pyprojecttoml = pytest.importorskip("setuptools.config.pyprojecttoml")
    config = pyprojecttoml.read_configuration(ROOT / "pyproject.toml")
    assert canonical(config["project"]["dependencies"]) == expected


def test_console_script_is_declared_and_resolves():
    assert PYPROJECT["project"]["scripts"] == {"tokclf": "tokclf.__main__:main"}
    module, _, attr = PYPROJECT["project"]["scripts"]["tokclf"].partition(":")
    main = getattr(importlib.import_module(module), attr)
    assert callable(main)
    assert set(importlib.import_module(module).COMMANDS) == {"train", "evaluate", "predict", "tune"}


@pytest.mark.parametrize("result", [{"eval_f1": 0.9}, 42])
def test_console_script_exits_0_after_success(monkeypatch, result):
    """The console script does `sys.exit(main())`: main must return None or 0 when the command succeeded."""
    from tokclf import __main__ as entry

    monkeypatch.setitem(entry.COMMANDS, "evaluate", lambda argv: result)
    assert entry.main(["evaluate"]) in (None, 0)


def test_setup_installs_the_project_editable():
    setup = (ROOT / "scripts" / "setup.sh").read_text()
    torch_line = next(i for i, line in enumerate(setup.splitlines()) if '"torch==' in line)
    install_line = next(i for i, line in enumerate(setup.splitlines()) if "pip install" in line and " -e ." in line)
    assert torch_line < install_line, "the CPU torch build must be installed before the project"


def test_package_data_holds_every_non_python_file_of_the_package():
    """Files the package reads at run time (the report's page template) are declared as package data, so a
    non-editable install has them (#28)."""
    declared = PYPROJECT["tool"]["setuptools"]["package-data"]
    package_root = ROOT / "tokclf"
    data = [p for p in package_root.rglob("*") if p.is_file() and p.suffix not in (".py", ".pyc")
            and "__pycache__" not in p.parts]
    assert data, "the report's template is package data"
    for path in data:
        package = ".".join(path.parent.relative_to(ROOT).parts)
        owners = {name: globs for name, globs in declared.items() if package == name or package.startswith(name + ".")}
        assert any(path.relative_to(ROOT / name.replace(".", "/")).match(glob)
                   for name, globs in owners.items() for glob in globs), f"{path} is not package data"

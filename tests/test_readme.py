"""What the README lists is checked against the tree: the Debian packages ``make test``'s setup installs,
and every package of the workspace (the route table is checked in services/gateway/tests).

A new user reads these lists before running anything; a package added to install-backends.sh, or an
executor added under services/, without a line here would be a surprise.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[1]


def installed_packages() -> set[str]:
    """Names after ``apt_install`` and in ``pkgs+=(...)`` of the setup script."""
    script = (ROOT / "scripts/ci/install-backends.sh").read_text()
    names: set[str] = set()
    for line in script.splitlines():
        if "apt_install()" in line or "${pkgs" in line:
            continue
        for args in re.findall(r"apt_install ([^;\n]+)", line):
            names.update(a for a in args.split() if re.fullmatch(r"[a-z0-9][a-z0-9.+-]+", a))
        for args in re.findall(r"pkgs\+=\(([^)]*)\)", line):
            names.update(args.split())
    return names


def test_every_package_make_test_installs_is_in_the_readme() -> None:
    packages = installed_packages()
    assert {"postgresql", "slurm-wlm", "gridengine-master"} <= packages  # the script was really read
    readme = (ROOT / "README.md").read_text()
    prerequisites = readme[readme.index("### Prerequisites") : readme.index("## Try it")]

    missing = sorted(p for p in packages if f"`{p}`" not in prerequisites)

    assert not missing, f"README.md's prerequisites do not name: {', '.join(missing)}"


def test_the_layout_lists_every_package_of_the_workspace() -> None:
    packages = sorted(
        f"{p.parent.parent.name}/{p.parent.name}"
        for p in ROOT.glob("*/*/pyproject.toml")
        if p.parent.parent.name in ("libs", "services")
    )
    assert "services/executor-hpc" in packages
    readme = (ROOT / "README.md").read_text()
    layout = readme[readme.index("## Layout") :]
    layout = layout[: layout.index("```", layout.index("```") + 3)]
    listed = set(re.findall(r"^((?:libs|services)/[\w-]+)", layout, re.M))

    assert [p for p in packages if p not in listed] == []

"""What a Bento carries of launchbay: the service's floors by package, self-sufficient, as files.

A served model must not depend on launchbay's checkout or on whatever lies beside the installed
package; these tests copy the service's code the way `build` does and import it in isolation.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

from launchbay.serving import package


def _modules(root: Path) -> set[str]:
    return {
        ".".join(p.relative_to(root).with_suffix("").parts).removesuffix(".__init__")
        for p in root.rglob("*.py")
    }


def test_the_service_sources_are_the_foundation_config_checks_serving_as_plain_files(tmp_path: Path) -> None:
    copied = package.service_sources(tmp_path)
    root = tmp_path / "launchbay"
    assert {p.parent.name for p in copied} == {"launchbay", "config", "checks", "serving"}
    assert not any(p.is_symlink() for p in tmp_path.rglob("*"))
    assert (
        not (root / "cli").exists() and not (root / "rollout").exists() and not (root / "pipelines").exists()
    )
    assert not (root / "__main__.py").exists()  # it runs the CLI, which the Bento does not carry
    assert (root / "serving" / "service.py").read_text() == Path(package.__file__).with_name(
        "service.py"
    ).read_text()


def test_every_launchbay_import_of_the_copy_resolves_inside_the_copy(tmp_path: Path) -> None:
    package.service_sources(tmp_path)
    present = _modules(tmp_path)
    for path in (tmp_path / "launchbay").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
                if not node.module.startswith("launchbay"):
                    continue
                assert node.module in present, f"{path.name} imports {node.module}, not in the Bento"
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names if a.name.startswith("launchbay")]
                for name in names:
                    assert name in present, f"{path.name} imports {name}, not in the Bento"


def test_the_copy_imports_on_its_own_ahead_of_the_installed_launchbay(tmp_path: Path) -> None:
    package.service_sources(tmp_path)
    probe = (
        "import launchbay, launchbay.serving.deploy, launchbay.serving.schema, launchbay.checks.registered;"
        "print(launchbay.__file__)"
    )
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    res = subprocess.run(
        [sys.executable, "-c", probe], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60
    )
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == str(tmp_path / "launchbay" / "__init__.py")


def test_tags_and_stores_are_named_the_same_everywhere(tmp_path: Path) -> None:
    from launchbay.home import Home

    assert package.tag("fraud-detector", "3") == "fraud-detector:v3"
    assert package.signed_dir("/store/m/v3") == Path("/store/m/v3/signed")
    assert package.bentoml_home(Home(tmp_path)) == tmp_path / "bentoml"

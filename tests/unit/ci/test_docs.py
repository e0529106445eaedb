"""The documentation site: references generated from the code are current, nothing a user can
type (a verb, an option, a config key) is undocumented, and the site builds with --strict."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
_spec = importlib.util.spec_from_file_location("reference", ROOT / "scripts" / "reference.py")
assert _spec is not None and _spec.loader is not None
reference = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(reference)


def test_the_references_are_current_and_document_every_verb_option_and_key() -> None:
    res = subprocess.run([sys.executable, "scripts/reference.py", "--check"], cwd=ROOT,
                         capture_output=True, text=True, timeout=120)  # fmt: skip
    assert res.returncode == 0, res.stderr


def test_a_config_key_without_a_description_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    from launchbay.pipelines import scaffold

    schema = json.loads(scaffold.schema_text())
    schema["$defs"]["DataSection"]["properties"]["brand_new"] = {"type": "integer", "default": 3}
    monkeypatch.setattr(scaffold, "schema_text", lambda: json.dumps(schema))
    undocumented: list[str] = []
    text = reference.configuration(undocumented)
    assert undocumented == ["config key `data.brand_new` has no description"]
    assert "| `data.brand_new` | integer | 3 |" in text


def test_a_verb_or_option_without_help_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    import typer

    from launchbay.cli import main

    app = typer.Typer()

    @app.command()
    def shout(loud: bool = typer.Option(False, "--loud")) -> None:
        pass

    @app.command()
    def whisper() -> None:
        """Say it quietly."""

    monkeypatch.setattr(main, "app", app)
    undocumented: list[str] = []
    text = reference.cli(undocumented)
    assert undocumented == ["verb `launchbay shout` has no help", "`launchbay shout`: --loud has no help"]
    assert "## whisper" in text


def test_the_site_builds_strictly_and_a_broken_link_fails_it(tmp_path: Path) -> None:
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    mkdocs = [sys.executable, "-m", "mkdocs", "build", "--strict"]
    ok = subprocess.run([*mkdocs, "-d", str(tmp_path / "site")], cwd=ROOT, env=env,
                        capture_output=True, text=True, timeout=300)  # fmt: skip
    assert ok.returncode == 0, ok.stderr
    assert (tmp_path / "site" / "reference" / "cli" / "index.html").exists()
    # The same site with one link to a page that does not exist.
    docs = tmp_path / "docs"
    subprocess.run(["cp", "-r", str(ROOT / "docs"), str(docs)], check=True)
    (docs / "platforms.md").write_text((docs / "platforms.md").read_text() + "\n[gone](nowhere.md)\n")
    config = tmp_path / "mkdocs.yml"
    config.write_text((ROOT / "mkdocs.yml").read_text().replace("docs_dir: docs", f"docs_dir: {docs}"))
    broken = subprocess.run([*mkdocs, "-f", str(config), "-d", str(tmp_path / "broken")], cwd=tmp_path,
                            env=env, capture_output=True, text=True, timeout=300)  # fmt: skip
    assert broken.returncode != 0 and "nowhere.md" in broken.stderr

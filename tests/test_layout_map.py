"""The README's layout map names every module under src/tidpo/: a module is named when its path appears in the
map's code block (``src/tidpo/training/trainer.py``), or its file name appears on a line of the map that starts with
its folder or a module of that folder (``src/tidpo/data/  preference.py, ...``,
``src/tidpo/training/config.py  ... (presets.py: ...)``), or that folder's line says its modules are a table that finds
them (``estimators/*.py``)."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "tidpo"


def layout_block() -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("## Layout", 1)[1]
    return section.split("```", 2)[1]


def named(module: Path, block: str) -> bool:
    relative = module.relative_to(ROOT).as_posix()
    if relative in block:
        return True
    folder = module.parent.relative_to(ROOT).as_posix() + "/"
    lines, current = [], None
    for line in block.splitlines():  # a folder's line and the lines that continue it (indented)
        if line.startswith("src/"):
            current = line.split()[0]
        if current is not None and (current == folder or current.rsplit("/", 1)[0] + "/" == folder):
            lines.append(line)
    if any(f"{module.parent.name}/*.py" in line for line in block.splitlines()):
        return True
    return any(re.search(rf"(^|[\s(,]){re.escape(module.name)}\b", line) for line in lines)


def test_every_module_is_in_the_readme_layout_map():
    block = layout_block()
    modules = [p for p in sorted(PACKAGE.rglob("*.py")) if p.name != "__init__.py"]
    missing = [p.relative_to(ROOT).as_posix() for p in modules if not named(p, block)]
    assert missing == [], f"README.md's layout map does not name: {missing}"


def test_the_check_fails_for_a_module_the_map_does_not_name():
    block = layout_block()
    assert not named(PACKAGE / "training" / "no_such_module.py", block)

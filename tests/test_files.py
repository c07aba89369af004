"""Output files are written whole or not at all (tidpo.files)."""

from __future__ import annotations

import pytest

from tidpo import files


def test_write_text_replaces_the_file_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "README.md"
    path.write_text("old")
    assert files.write_text(path, "new ü") == path
    assert path.read_text(encoding="utf-8") == "new ü" and [p.name for p in tmp_path.iterdir()] == ["README.md"]


def test_a_write_that_dies_leaves_the_previous_file(tmp_path):
    path = tmp_path / "results.json"
    path.write_text('{"whole": true}')
    with pytest.raises(KeyboardInterrupt), files.replacing(path) as tmp:
        tmp.write_text('{"cut sh')
        raise KeyboardInterrupt
    assert path.read_text() == '{"whole": true}' and [p.name for p in tmp_path.iterdir()] == ["results.json"]


def test_the_temporary_keeps_the_suffix_for_writers_that_go_by_it(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig = plt.figure()
    with files.replacing(tmp_path / "curves.png") as tmp:
        assert tmp.suffix == ".png" and tmp.parent == tmp_path
        fig.savefig(tmp)  # matplotlib picks the format from the suffix
    plt.close(fig)
    assert (tmp_path / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

"""``medseqft pretrain`` and the cached demo foundation model."""

import json

import pytest

from MedSeqFTLib import demo_foundation as dfm
from MedSeqFTLib.cli import main
from MedSeqFTLib.models.checkpoint import load_safetensors


@pytest.fixture(scope="module")
def phantoms(tmp_path_factory):
    from MedSeqFTLib.data.phantoms import generate_phantoms

    root = tmp_path_factory.mktemp("pretrain")
    return generate_phantoms(root / "ph", tasks=1, cases=2, seed=5, size=16, test_cases=1)[0]


def test_pretrain_writes_reproducible_foundation_with_metadata(phantoms, tmp_path):
    from MedSeqFTLib.models.foundation import load_foundation

    args = ["--data", str(phantoms), "--steps", "2", "--size", "16", "--seed", "3"]
    a, b = tmp_path / "a.safetensors", tmp_path / "b.safetensors"
    assert main(["pretrain", str(a)] + args) == 0
    assert main(["pretrain", str(b)] + args) == 0
    ta, ma = load_safetensors(a)
    tb, mb = load_safetensors(b)
    assert ta.keys() == tb.keys() and all((ta[k] == tb[k]).all() for k in ta)
    assert any(k.startswith("ssl_head.") for k in ta) and any(k.startswith("encoder.") for k in ta)
    assert ma["ssl_pretext"] == "masked" and ma["arch"]["name"] == "small_unet"
    assert ma["patch_size"] == [16, 16, 16] and ma["preprocess"]["patch_size"] == [16, 16, 16]
    assert ma["n_volumes"] == 3  # 2 labelled + 1 test-only image
    assert ma["source_sha256"] == mb["source_sha256"] and len(ma["source_sha256"]) == 64
    assert ma["pretrain"]["steps"] == 2 and ma["pretrain"]["seed"] == 3
    encoder, head, meta = load_foundation(a)
    assert head is not None and meta["kind"] == "foundation"


def test_collect_images_accepts_image_folders_and_files(phantoms):
    images = sorted((phantoms / "imagesTr").iterdir())
    found = dfm.collect_images([phantoms / "imagesTr", images[0]])
    assert [paths[0].name for paths, _ in found] == [i.name for i in images] + [images[0].name]
    assert {m for _, m in found} == {"CT"}


@pytest.mark.parametrize("extra, needle", [
    (["--steps", "0"], "--steps"),
    (["--size", "4"], "--size"),
    (["--size", "16", "16"], "--size"),
])
def test_pretrain_bad_options_exit_2(phantoms, tmp_path, capsys, extra, needle):
    out = tmp_path / "m.safetensors"
    assert main(["pretrain", str(out), "--data", str(phantoms)] + extra) == 2
    assert needle in capsys.readouterr().err
    assert not out.exists()


def test_pretrain_bad_paths_exit_2(phantoms, tmp_path, capsys):
    assert main(["pretrain", str(tmp_path / "m.safetensors"), "--data", str(tmp_path / "missing")]) == 2
    assert "not found" in capsys.readouterr().err
    assert main(["pretrain", str(tmp_path / "m.pt"), "--data", str(phantoms)]) == 2
    assert ".safetensors" in capsys.readouterr().err
    existing = tmp_path / "x.safetensors"
    existing.write_bytes(b"keep")
    assert main(["pretrain", str(existing), "--data", str(phantoms)]) == 2
    assert "--force" in capsys.readouterr().err and existing.read_bytes() == b"keep"


def test_demo_foundation_builds_once_and_rebuilds_on_recipe_change(tmp_path, monkeypatch):
    real = dfm.demo_recipe()
    assert real["phantoms"]["seed"] != 2025  # never the demo tasks' seed
    steps = {"n": 1}

    def tiny():
        r = dict(real)
        r["phantoms"] = {**real["phantoms"], "tasks": 1, "cases": 2, "size": 16}
        r["patch_size"] = [16, 16, 16]
        r["steps"] = steps["n"]
        return r

    monkeypatch.setattr(dfm, "demo_recipe", tiny)
    monkeypatch.setenv("MEDSEQFT_CACHE", str(tmp_path / "cache"))
    p1 = dfm.demo_foundation()
    assert p1.parent == tmp_path / "cache" and p1.is_file()
    _, meta = load_safetensors(p1)
    assert meta["source"] == "demo" and meta["recipe"]["steps"] == 1 and meta["recipe_key"] in p1.name
    built = []
    monkeypatch.setattr(dfm, "build_foundation", lambda *a, **k: built.append(1))
    assert dfm.demo_foundation() == p1 and not built  # cached: nothing rebuilt
    monkeypatch.undo()
    monkeypatch.setattr(dfm, "demo_recipe", tiny)
    steps["n"] = 2
    p2 = dfm.demo_foundation(cache_dir=tmp_path / "cache")
    assert p2 != p1 and p2.is_file() and p1.is_file()
    assert [p.name for p in (tmp_path / "cache").iterdir() if p.name.startswith(".")] == []  # temp phantoms removed


def test_shipped_demo_foundation_matches_the_current_recipe(tmp_path, monkeypatch):
    """The package ships the demo M0 of the *current* recipe; a recipe change must re-ship it
    (run ``MEDSEQFT_REBUILD_DEMO_M0=1 medseqft init /tmp/x --foundation demo`` and copy the
    cached file into MedSeqFTLib/resources)."""
    recipe = dfm.demo_recipe()
    shipped = dfm.packaged_foundation_dir() / f"demo_foundation_{dfm.recipe_key(recipe)}.safetensors"
    assert shipped.is_file(), f"re-ship the demo M0: {shipped.name} is missing"
    _, meta = load_safetensors(shipped)
    assert meta["recipe"] == json.loads(json.dumps(recipe)) and meta["source"] == "demo"
    assert sorted(p.name for p in dfm.packaged_foundation_dir().glob("demo_foundation_*")) == [shipped.name]
    monkeypatch.setenv("MEDSEQFT_CACHE", str(tmp_path / "empty_cache"))
    assert dfm.demo_foundation() == shipped  # used as is, no pretraining
    built = []
    monkeypatch.setattr(dfm, "build_foundation", lambda out, *a, **k: built.append(out))
    monkeypatch.setenv("MEDSEQFT_REBUILD_DEMO_M0", "1")
    monkeypatch.setattr(dfm, "generate_phantoms", lambda *a, **k: [], raising=False)
    dfm.demo_foundation()
    assert built and built[0].parent == tmp_path / "empty_cache"

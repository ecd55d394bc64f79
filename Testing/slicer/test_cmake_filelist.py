"""MedSeqFT/CMakeLists.txt must list every Python file of the module and of MedSeqFTLib.

The Slicer build copies exactly the listed files; a file that is missing from the list is
missing from the installed extension (and a listed file that does not exist breaks the
build). On failure the message shows the lines to add or remove.
"""

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CMAKE = REPO / "MedSeqFT" / "CMakeLists.txt"


def cmake_list(text: str, name: str) -> list:
    match = re.search(r"set\(\s*" + name + r"\s+(.*?)\)", text, flags=re.S)
    assert match, f"{CMAKE}: no set({name} ...) block"
    items = []
    for line in match.group(1).splitlines():
        line = line.split("#", 1)[0].strip()
        items += line.split()
    return items


def python_files(root: Path, base: Path, skip=()) -> set:
    return {p.relative_to(base).as_posix() for p in root.rglob("*.py")
            if "__pycache__" not in p.parts and not any(s in p.relative_to(root).parts for s in skip)}


def _diff_message(listed: set, on_disk: set, var: str) -> str:
    missing = sorted(on_disk - listed)
    extra = sorted(listed - on_disk)
    return (f"{CMAKE} {var} is out of date.\n  add:    " + "\n          ".join(missing or ["-"])
            + "\n  remove: " + "\n          ".join(extra or ["-"]))


def test_module_scripts_match_files():
    text = CMAKE.read_text(encoding="utf-8")
    listed = cmake_list(text, "MODULE_PYTHON_SCRIPTS")
    assert len(listed) == len(set(listed)), "duplicate entries"
    on_disk = python_files(REPO / "MedSeqFT", REPO / "MedSeqFT", skip=("Testing",))
    assert set(listed) == on_disk, _diff_message(set(listed), on_disk, "MODULE_PYTHON_SCRIPTS")
    assert "MedSeqFT.py" in listed


def test_library_scripts_match_files():
    text = CMAKE.read_text(encoding="utf-8")
    listed = cmake_list(text, "MEDSEQFTLIB_PYTHON_SCRIPTS")
    assert len(listed) == len(set(listed)), "duplicate entries"
    on_disk = python_files(REPO / "MedSeqFTLib", REPO)
    assert set(listed) == on_disk, _diff_message(set(listed), on_disk, "MEDSEQFTLIB_PYTHON_SCRIPTS")


def test_resources_exist_and_top_level_declares_extension():
    text = CMAKE.read_text(encoding="utf-8")
    for res in cmake_list(text, "MODULE_PYTHON_RESOURCES"):
        assert (REPO / "MedSeqFT" / res.replace("${MODULE_NAME}", "MedSeqFT")).is_file(), res
    top = (REPO / "CMakeLists.txt").read_text(encoding="utf-8")
    for needle in ('EXTENSION_CATEGORY "Segmentation"', 'EXTENSION_DEPENDS "PyTorch"', "find_package(Slicer REQUIRED)",
                   "add_subdirectory(MedSeqFT)", "Slicer_EXTENSION_GENERATE_CONFIG", "Slicer_EXTENSION_CPACK"):
        assert needle in top, needle
    assert "slicer_add_python_unittest(SCRIPT ${MODULE_NAME}.py)" in text


def rewrite_lists() -> None:
    """Rewrite both lists from the files on disk: ``python Testing/slicer/test_cmake_filelist.py --write``."""
    text = CMAKE.read_text(encoding="utf-8")
    lists = {"MODULE_PYTHON_SCRIPTS": python_files(REPO / "MedSeqFT", REPO / "MedSeqFT", skip=("Testing",)),
             "MEDSEQFTLIB_PYTHON_SCRIPTS": python_files(REPO / "MedSeqFTLib", REPO)}
    for var, files in lists.items():
        body = "".join(f"  {f}\n" for f in sorted(files))
        text = re.sub(r"(set\(\s*" + var + r"\s*\n).*?(\s*\))", lambda m: m.group(1) + body + "  )", text, count=1, flags=re.S)
    CMAKE.write_text(text, encoding="utf-8")


if __name__ == "__main__":
    import sys

    if "--write" in sys.argv:
        rewrite_lists()
        print(f"rewrote {CMAKE}")

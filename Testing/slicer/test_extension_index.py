"""Extensions Index readiness, checked offline.

``check_description_file`` re-implements the checks of the Slicer Extensions Index's
``scripts/check_description_files.py`` (Slicer/ExtensionsIndex) on the catalog entry
``MedSeqFT.json`` and this repository, without a network: the JSON schema it references
(Slicer's ``Schemas/slicer-extension-catalog-entry-schema-v1.0.x.json``: required keys, no other
keys, types, ``scm_type`` and ``tier`` values), a known category, the ``scm_url`` syntax (git or
https scheme), "slicer" in the repository name, the top-level ``CMakeLists.txt`` (``project()``
name equal to the entry's file name, ``EXTENSION_ICONURL`` and ``EXTENSION_SCREENSHOTURLS`` set to
http(s) URLs; offline, the image they point to must exist in this repository as a PNG), and a
license file at the repository root. Online-only steps (clone, download of schema and images,
dependency lookup among the other entries) are replaced by the local equivalents above, plus a
check that ``build_dependencies`` matches ``EXTENSION_DEPENDS``.
"""

import json
import re
import urllib.parse
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SCHEMA_BASE = "https://raw.githubusercontent.com/Slicer/Slicer/main/Schemas/slicer-extension-catalog-entry-schema-"
#: the catalog entry schema's properties per version (type, allowed values)
SCHEMA_PROPERTIES = {
    "v1.0.0": {"$schema": str, "category": str, "scm_url": str, "scm_revision": str, "scm_type": str,
               "build_dependencies": list, "build_subdirectory": str, "enabled": bool},
}
SCHEMA_PROPERTIES["v1.0.1"] = dict(SCHEMA_PROPERTIES["v1.0.0"], tier=int)
SCHEMA_PROPERTIES["v1.0.2"] = dict(SCHEMA_PROPERTIES["v1.0.1"], dicom_support_rule=str)
REQUIRED = ("$schema", "category", "scm_url")
#: a subset of the index's accepted categories (the full list lives in the index's script)
CATEGORIES = {"Analysis", "Converters", "DICOM", "Developer Tools", "Examples", "Filtering", "IGT", "Informatics",
              "Neuroimaging", "Nuclear Medicine", "Quantification", "Radiotherapy", "Registration", "Rendering",
              "Segmentation", "Utilities"}
LICENSE_NAMES = ("LICENSE", "LICENCE", "License.txt", "license.txt", "LICENSE.txt", "COPYING", "COPYING.txt")


def _schema_errors(entry: dict) -> list:
    version = re.fullmatch(re.escape(SCHEMA_BASE) + r"(v\d+\.\d+\.\d+)\.json#?", str(entry.get("$schema", "")))
    if not version or version.group(1) not in SCHEMA_PROPERTIES:
        return [f"$schema: not a known catalog entry schema: {entry.get('$schema')!r}"]
    properties = SCHEMA_PROPERTIES[version.group(1)]
    errors = [f"{key}: required" for key in REQUIRED if key not in entry]
    errors += [f"{key}: not allowed by the schema" for key in entry if key not in properties]
    for key, value in entry.items():
        expected = properties.get(key)
        if expected and (type(value) is not expected):
            errors.append(f"{key}: expected {expected.__name__}, got {value!r}")
    if "build_dependencies" in entry and not all(isinstance(d, str) for d in entry["build_dependencies"]):
        errors.append("build_dependencies: items must be strings")
    if entry.get("scm_type", "git") not in ("git", "local"):
        errors.append("scm_type: must be git or local")
    if "tier" in entry and isinstance(entry["tier"], int):
        allowed = {1, 3, 5} if version.group(1) == "v1.0.1" else set(range(1, 6))
        if entry["tier"] not in allowed:
            errors.append(f"tier: must be one of {sorted(allowed)}")
    return errors


def _cmake_set(text: str, var: str):
    match = re.search(r"set\s*\(" + var + r'\s*"([^"]+)"\s*\)', text, re.IGNORECASE)
    return match.group(1).strip() if match else None


def _local_image(url: str, repo: Path):
    """The file a raw.githubusercontent.com/<owner>/<repo>/<branch>/<path> URL points to here."""
    parts = urllib.parse.urlsplit(url).path.strip("/").split("/")
    return repo.joinpath(*parts[3:]) if len(parts) > 3 else None


def check_description_file(entry_file: Path, repo: Path) -> list:
    """The index's checks on ``entry_file`` (a catalog entry) and ``repo``; returns the failures."""
    name = entry_file.stem
    try:
        entry = json.loads(entry_file.read_text(encoding="utf-8"))
    except ValueError as exc:
        return [f"failed to parse {entry_file.name}: {exc}"]
    errors = _schema_errors(entry)
    if entry.get("category") not in CATEGORIES:
        errors.append(f"category {entry.get('category')!r} is unknown")
    url = str(entry.get("scm_url", ""))
    if "://" not in url or urllib.parse.urlsplit(url).scheme not in ("git", "https"):
        errors.append("scm_url must be a git:// or https:// URL")
    repo_name = Path(urllib.parse.urlsplit(url).path).stem
    if "slicer" not in repo_name.lower():
        errors.append(f"repository name {repo_name!r} should contain 'Slicer' (e.g. Slicer{repo_name})")
    cmake = (repo / "CMakeLists.txt").read_text(encoding="utf-8") if (repo / "CMakeLists.txt").is_file() else ""
    project = re.findall(r"project\s*\(\s*([^\s\)]+)", cmake, re.IGNORECASE)
    if not project or project[0].strip("\"'") != name:
        errors.append(f"CMakeLists.txt project() name {project[:1]} does not match the entry's name {name!r}")
    icon = _cmake_set(cmake, "EXTENSION_ICONURL")
    shots = (_cmake_set(cmake, "EXTENSION_SCREENSHOTURLS") or "").split()
    for what, urls in (("EXTENSION_ICONURL", [icon] if icon else []), ("EXTENSION_SCREENSHOTURLS", shots)):
        if not urls:
            errors.append(f"no {what} in CMakeLists.txt")
        for u in urls:
            local = _local_image(u, repo) if u.startswith("http") else None
            if local is None or not local.is_file() or local.read_bytes()[:8] != b"\x89PNG\r\n\x1a\n":
                errors.append(f"{what} {u!r} is not an http(s) URL of a PNG in this repository")
    if not any((repo / n).is_file() for n in LICENSE_NAMES):
        errors.append("No license file found in repository root.")
    depends = (_cmake_set(cmake, "EXTENSION_DEPENDS") or "NA").split()
    if sorted(entry.get("build_dependencies", [])) != sorted(d for d in depends if d != "NA"):
        errors.append(f"build_dependencies {entry.get('build_dependencies')} differ from EXTENSION_DEPENDS {depends}")
    return errors


def test_catalog_entry_and_repository_pass_the_index_checks():
    assert check_description_file(REPO / "MedSeqFT.json", REPO) == []


def test_license_is_apache_2_and_matches_pyproject():
    text = (REPO / "LICENSE").read_text(encoding="utf-8")
    assert "Apache License" in text and "Version 2.0, January 2004" in text
    assert 'license = "Apache-2.0"' in (REPO / "pyproject.toml").read_text(encoding="utf-8")


@pytest.mark.parametrize("change, message", [
    (lambda e: e.pop("scm_url"), "scm_url: required"),
    (lambda e: e.update(scmurl="x"), "scmurl: not allowed"),
    (lambda e: e.update(category="Segmentations"), "category 'Segmentations' is unknown"),
    (lambda e: e.update(tier=2), "tier: must be one of [1, 3, 5]"),
    (lambda e: e.update(scm_url="https://github.com/medseqft/MedSeqFT.git"), "should contain 'Slicer'"),
    (lambda e: e.update(scm_url="ssh://github.com/medseqft/SlicerMedSeqFT.git"), "git:// or https://"),
    (lambda e: e.update(build_dependencies=[]), "differ from EXTENSION_DEPENDS"),
])
def test_the_checks_catch_bad_entries(tmp_path, change, message):
    entry = json.loads((REPO / "MedSeqFT.json").read_text(encoding="utf-8"))
    change(entry)
    path = tmp_path / "MedSeqFT.json"
    path.write_text(json.dumps(entry), encoding="utf-8")
    assert any(message in e for e in check_description_file(path, REPO)), check_description_file(path, REPO)


def test_a_repository_without_license_fails(tmp_path):
    """Finding: there was no LICENSE at the root, so the index's license check failed."""
    for name in ("CMakeLists.txt",):
        (tmp_path / name).write_text((REPO / name).read_text(encoding="utf-8"), encoding="utf-8")
    (tmp_path / "Resources").symlink_to(REPO / "Resources")
    assert check_description_file(REPO / "MedSeqFT.json", tmp_path) == ["No license file found in repository root."]


def test_batch_scripts_are_installed_with_the_module():
    """Finding: Resources/batch/ was referenced in the docs but not part of the build."""
    cmake = (REPO / "MedSeqFT" / "CMakeLists.txt").read_text(encoding="utf-8")
    listed = re.search(r"set\(MEDSEQFT_BATCH_RESOURCES\s+(.*?)\)", cmake, re.S)
    assert listed, "no MEDSEQFT_BATCH_RESOURCES list"
    on_disk = sorted(p.relative_to(REPO).as_posix() for p in (REPO / "Resources" / "batch").iterdir() if p.is_file())
    assert sorted(listed.group(1).split()) == on_disk
    assert re.search(r'RESOURCES\s+"[^"]*\$\{MEDSEQFT_BATCH_RESOURCES\}', cmake)
    assert "qt-scripted-modules/Resources/batch/" in (REPO / "docs" / "slicer.md").read_text(encoding="utf-8")


def test_older_slicer_refused_at_build_time():
    top = (REPO / "CMakeLists.txt").read_text(encoding="utf-8")
    assert re.search(r'VERSION_LESS\s+"5\.10"\)\s*\n\s*message\(FATAL_ERROR "MedSeqFT needs Slicer 5\.10', top)

"""The EspoCRM extension package (`espocrm_extension/`): what it defines, and building its zip.

The package's source lives in the repository's `espocrm_extension/` folder
(`manifest.json`, `files/custom/Espo/Modules/Bitbylaw/...`); `build()` zips it
in the layout EspoCRM's extension installer expects. `entity_attributes()` is
what the product relies on finding in a real EspoCRM, read from the same
entityDefs the package installs, so the setup check and the package cannot
drift apart.
"""
from __future__ import annotations

import json
import zipfile
from pathlib import Path

SOURCE = Path(__file__).resolve().parents[2] / "espocrm_extension"
MODULE = "Bitbylaw"
ENTITY = "CBeteiligte"
ADRESSE = "CAdresse"  # a party's addresses (docs/adressen-sync.md)
ENTITY_DEFS = SOURCE / "files/custom/Espo/Modules" / MODULE / "Resources/metadata/entityDefs" / f"{ENTITY}.json"
# A fixed timestamp for every zip member: the same source gives the same bytes.
_ZIP_TIME = (2026, 1, 1, 0, 0, 0)


def manifest() -> dict:
    return json.loads((SOURCE / "manifest.json").read_text())


def entity_fields() -> dict[str, dict]:
    """The CBeteiligte field definitions the extension installs."""
    return json.loads(ENTITY_DEFS.read_text())["fields"]


def zip_name() -> str:
    return f"bitbylaw-espocrm-extension-{manifest()['version']}.zip"


def build(dest_dir: str | Path) -> Path:
    """Write the installable zip into `dest_dir` and return its path."""
    if not (SOURCE / "manifest.json").is_file():
        raise FileNotFoundError(f"extension source not found at {SOURCE} (run from a checkout of the project)")
    dest = Path(dest_dir) / zip_name()
    dest.parent.mkdir(parents=True, exist_ok=True)
    members = sorted(p for p in SOURCE.rglob("*") if p.is_file())
    with zipfile.ZipFile(dest, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for path in members:
            info = zipfile.ZipInfo(path.relative_to(SOURCE).as_posix(), date_time=_ZIP_TIME)
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, path.read_bytes())
    return dest

"""Domain packs: finding them, their seed sample, and the reviewed modification list.

A domain pack (``configs/domains/<name>.yaml``, or any ``.yaml`` file) holds everything domain-specific:
the modification list, the three prompt templates, question filters, answer checks, evaluation rubric and
gates, and ``sample:``, the path (relative to the pack) of a CSV of seed questions with a ``question``
column. ``--domain NAME`` and ``domain: NAME`` name a pack in ``configs/domains/``; a value ending in
``.yaml``/``.yml`` or containing ``/`` is a path (relative to the run config that declares it, or to the
current directory on the command line).

A modification list is either plain strings (hand-written: treated as approved) or reviewed entries
``{text, status: proposed|approved|rejected, reviewer, note, evidence}`` as written by
``synthgen mine-modifications``; ``modifications:`` may also be the path of such a YAML file. A run uses
the entries whose status is in ``modifications_include`` (default: approved only).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from generation.errors import ConfigError

STATUSES = ("proposed", "approved", "rejected")
ENTRY_KEYS = {"text", "status", "reviewer", "note", "evidence"}


def is_path_reference(ref: str) -> bool:
    """A domain/model reference is a path when it ends in .yaml/.yml or contains a slash."""
    return ref.endswith((".yaml", ".yml")) or "/" in ref or os.sep in ref


def resolve_domain_file(ref: str, search_dirs: list[Path], base_dir: Path | None = None) -> Path:
    """The pack file for ``ref``: a path (relative to ``base_dir``, else the current directory) or a name
    looked up as ``<dir>/domains/<name>.yaml`` in ``search_dirs``."""
    if not isinstance(ref, str) or not ref.strip():
        raise ConfigError("domain: must name a domain pack (a name in configs/domains/ or a path to a .yaml file)")
    if is_path_reference(ref):
        candidate = Path(ref).expanduser()
        if not candidate.is_absolute() and base_dir is not None:
            candidate = base_dir / candidate
        if candidate.is_file():
            return candidate.resolve()
        raise ConfigError(f"domain pack file not found: {ref}" + (f" (relative to {base_dir})" if base_dir and not Path(ref).is_absolute() else ""))
    for directory in search_dirs:
        path = directory / "domains" / f"{ref}.yaml"
        if path.is_file():
            return path.resolve()
    looked = ", ".join(str(d / "domains") for d in search_dirs)
    raise ConfigError(f"no domain named {ref!r} (looked for {ref}.yaml in {looked}); known: {', '.join(known_domains()) or 'none'}")


def known_domains() -> list[str]:
    """Names of the packs shipped in this repo's ``configs/domains/``."""
    from generation.config import BUNDLED_CONFIGS

    return sorted(p.stem for p in (BUNDLED_CONFIGS / "domains").glob("*.yaml"))


@dataclass(frozen=True)
class DomainPack:
    """A pack file as read from disk (not merged with other layers)."""

    name: str
    path: Path
    layer: dict[str, Any]  # the pack's keys, ``sample`` removed
    sample: Path | None  # absolute path of its seed sample CSV

    def dataset_layer(self) -> dict[str, Any]:
        """The ``dataset`` section that loads the pack's seed sample (empty if it has none)."""
        if self.sample is None:
            return {}
        return {"dataset": {"path": "csv", "data_files": str(self.sample), "split": "train", "column": "question"}}


def read_domain_pack(file: Path) -> DomainPack:
    """Read a pack file; ``sample`` must name an existing file (relative to the pack)."""
    from generation.config import read_yaml_mapping

    layer = dict(read_yaml_mapping(file))
    sample = layer.pop("sample", None)
    sample_path = None
    if sample is not None:
        if not isinstance(sample, str) or not sample.strip():
            raise ConfigError(f"{file}: sample: must be the path of a CSV file with a 'question' column")
        sample_path = Path(sample).expanduser()
        if not sample_path.is_absolute():
            sample_path = (file.parent / sample_path).resolve()
        if not sample_path.is_file():
            raise ConfigError(f"{file}: sample: file not found: {sample_path}")
    name = file.stem if file.parent.name == "domains" else str(file)
    return DomainPack(name, file, layer, sample_path)


def load_domain_pack(ref: str, search_dirs: list[Path] | None = None, base_dir: Path | None = None) -> DomainPack:
    """Resolve and read a pack by name or path (default search: this repo's ``configs/``)."""
    from generation.config import BUNDLED_CONFIGS

    return read_domain_pack(resolve_domain_file(ref, search_dirs or [BUNDLED_CONFIGS], base_dir or Path.cwd()))


# ------------------------------------------------------------------------------- reviewed entries


def read_modification_file(path: Path) -> list[Any]:
    """The ``modifications`` list of a reviewed YAML file (as written by ``synthgen mine-modifications``)."""
    from generation.config import read_yaml_mapping

    data = read_yaml_mapping(path)
    entries = data.get("modifications")
    if not isinstance(entries, list):
        raise ConfigError(f"{path}: modifications: required list is missing")
    return entries


def check_entries(entries: list[Any], origin: str) -> list[dict[str, Any]]:
    """Validate a modification list (strings or reviewed entries) into entry dicts; strings are approved."""
    checked = []
    for index, entry in enumerate(entries):
        where = f"{origin}: modifications[{index}]"
        if isinstance(entry, str):
            if not entry.strip():
                raise ConfigError(f"{where}: empty modification")
            checked.append({"text": entry.strip(), "status": "approved", "reviewer": None, "note": None, "evidence": None})
            continue
        if not isinstance(entry, dict):
            raise ConfigError(f"{where}: must be a string or a mapping with text and status, got {type(entry).__name__}")
        unknown = set(entry) - ENTRY_KEYS
        if unknown:
            raise ConfigError(f"{where}.{sorted(unknown)[0]}: unknown key (allowed: {', '.join(sorted(ENTRY_KEYS))})")
        text = entry.get("text")
        if not isinstance(text, str) or not text.strip():
            raise ConfigError(f"{where}.text: required non-empty string")
        status = entry.get("status")
        if status not in STATUSES:
            raise ConfigError(f"{where}.status: must be one of {', '.join(STATUSES)}, got {status!r}")
        for key in ("reviewer", "note"):
            if entry.get(key) is not None and not isinstance(entry[key], str):
                raise ConfigError(f"{where}.{key}: must be a string or null")
        if entry.get("evidence") is not None and not isinstance(entry["evidence"], dict):
            raise ConfigError(f"{where}.evidence: must be a mapping or null")
        checked.append({"text": text.strip(), "status": status, "reviewer": entry.get("reviewer"), "note": entry.get("note"),
                        "evidence": entry.get("evidence")})  # fmt: skip
    return checked


def select_modifications(value: Any, include: Any, origin: str) -> list[str]:
    """The modification texts a run uses: entries whose status is in ``include`` (plain strings count as
    approved), in list order, without repeats. ``value`` is a list or the path of a reviewed YAML file."""
    if isinstance(value, str):
        path = Path(value)
        entries = read_modification_file(path)
        origin = str(path)
    elif isinstance(value, list):
        entries = value
    elif value is None:
        raise ConfigError(f"{origin}: modifications: required key is missing")
    else:
        raise ConfigError(f"{origin}: modifications: must be a list or the path of a reviewed YAML file")
    if not isinstance(include, list) or not include or any(s not in STATUSES for s in include):
        raise ConfigError(f"{origin}: modifications_include: must be a non-empty list of {', '.join(STATUSES)}")
    checked = check_entries(entries, origin)
    chosen: list[str] = []
    for entry in checked:
        if entry["status"] in include and entry["text"] not in chosen:
            chosen.append(entry["text"])
    if not chosen:
        counts = {s: sum(1 for e in checked if e["status"] == s) for s in STATUSES}
        raise ConfigError(
            f"{origin}: modifications: no entry with status {' or '.join(include)} "
            f"({counts['proposed']} proposed, {counts['approved']} approved, {counts['rejected']} rejected); "
            "review the list (set status: approved) or run with --set modifications_include=[approved,proposed]"
        )
    return chosen

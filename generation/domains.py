"""Domain packs: finding them, the base pack they inherit, their seed sample, and the reviewed modification list.

A domain pack (``configs/domains/<name>.yaml``, or any ``.yaml`` file) holds what is domain-specific. The
smallest pack has four keys::

    name: beekeeping
    description: beekeeping and hive health
    modifications: [asks about the season when this hive task is best done, ...]
    sample: questions.csv          # a CSV with a ``question`` column, relative to the pack, or a list

Everything else comes from the generic **base pack** (``configs/domains/_base.yaml``: prompts, question
filters, answer checks, the judge rubric's system message, with ``configs/eval/defaults.yaml``'s rubric
templates beneath it); a pack overrides any key it sets. ``{domain}`` in a prompt, rubric or mining-prompt
text is replaced by the pack's ``description`` (its ``name`` when it has none) when the config is loaded.
``name`` and ``description`` describe the pack; they are kept as pack metadata (``domain_pack`` in the
effective config), never merged into the run config's own ``name`` and ``description``.

``--domain NAME`` and ``domain: NAME`` name a pack in ``configs/domains/`` (shipped with synthgen as package
data); a value ending in ``.yaml``/``.yml`` or containing ``/`` is a path (relative to the run config that
declares it, or to the current directory on the command line).

A modification list is either plain strings (hand-written: treated as approved) or reviewed entries
``{text, status: proposed|approved|rejected, reviewer, note, evidence}`` as written by
``synthgen mine-modifications``; ``modifications:`` may also be the path of such a YAML file. A run uses
the entries whose status is in ``modifications_include`` (default: approved only).
"""

from __future__ import annotations

import copy
import hashlib
import os
import string
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from generation.errors import ConfigError

STATUSES = ("proposed", "approved", "rejected")
ENTRY_KEYS = {"text", "status", "reviewer", "note", "evidence"}
BASE_PACK = "_base"  # configs/domains/_base.yaml; names starting with "_" are not selectable packs
PACK_METADATA = ("name", "description")
NOT_IN_A_PACK = ("domain", "model", "fallback", "domain_pack")
# Texts in which "{domain}" means the pack's description (filled when the config is loaded).
DOMAIN_TEXTS = (("prompts", "modify_question"), ("prompts", "chosen"), ("prompts", "rejected"), ("prompts", "corrupt"),
                ("evaluation", "judge", "rubric"), ("mining", "prompt"))  # fmt: skip


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
    if not ref.startswith("_"):
        for directory in search_dirs:
            path = directory / "domains" / f"{ref}.yaml"
            if path.is_file():
                return path.resolve()
    looked = ", ".join(str(d / "domains") for d in search_dirs)
    raise ConfigError(f"no domain named {ref!r} (looked for {ref}.yaml in {looked}); known: {', '.join(known_domains()) or 'none'}")


def known_domains() -> list[str]:
    """Names of the packs shipped with synthgen (``configs/domains/``, package data)."""
    from generation.config import BUNDLED_CONFIGS

    return sorted(p.stem for p in (BUNDLED_CONFIGS / "domains").glob("*.yaml") if not p.stem.startswith("_"))


@dataclass(frozen=True)
class DomainPack:
    """A pack file as read from disk (not merged with other layers)."""

    name: str  # the pack's ``name``, else its file name without .yaml
    description: str | None
    path: Path
    layer: dict[str, Any]  # the pack's keys, ``sample``, ``name`` and ``description`` removed
    sample: Path | None  # absolute path of its seed sample CSV (an inline list is written to the cache once)

    @property
    def domain_text(self) -> str:
        """What ``{domain}`` stands for in prompts: the description, else the name."""
        return self.description or self.name

    def metadata(self) -> dict[str, Any]:
        """The pack metadata a run records (``domain_pack`` in the effective config)."""
        return {"name": self.name, "description": self.description}

    def dataset_layer(self) -> dict[str, Any]:
        """The ``dataset`` section that loads the pack's seed sample (empty if it has none)."""
        if self.sample is None:
            return {}
        return {"dataset": {"path": "csv", "data_files": str(self.sample), "split": "train", "column": "question"}}


def _metadata_text(file: Path, layer: dict[str, Any], key: str) -> str | None:
    value = layer.pop(key, None)
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"{file}: {key}: must be a non-empty text")
    return " ".join(value.split())


def inline_sample_file(questions: list[str]) -> Path:
    """A pack's inline sample as a CSV in synthgen's cache (named by content, written once, atomically)."""
    from generation.embedded_hf import cache_root
    from generation.io import write_csv

    digest = hashlib.sha256("\n".join(questions).encode("utf-8")).hexdigest()[:16]
    path = cache_root() / "samples" / f"{digest}.csv"
    if not path.is_file():
        write_csv(path, ["question"], ({"question": q} for q in questions))
    return path


def _sample_path(file: Path, sample: Any) -> Path | None:
    if sample is None:
        return None
    if isinstance(sample, list):
        if not sample:
            raise ConfigError(f"{file}: sample: the list of sample questions is empty")
        for index, question in enumerate(sample):
            if not isinstance(question, str) or not question.strip():
                raise ConfigError(f"{file}: sample[{index}]: must be a non-empty question")
        return inline_sample_file([" ".join(q.split()) for q in sample])
    if not isinstance(sample, str) or not sample.strip():
        raise ConfigError(f"{file}: sample: must be the path of a CSV file with a 'question' column, or a list of questions")
    path = Path(sample).expanduser()
    if not path.is_absolute():
        path = (file.parent / path).resolve()
    if not path.is_file():
        raise ConfigError(f"{file}: sample: file not found: {path}")
    return path


def read_domain_pack(file: Path) -> DomainPack:
    """Read a pack file: metadata, ``sample`` (relative to the pack, or an inline list) and the rest."""
    from generation.config import read_yaml_mapping

    layer = dict(read_yaml_mapping(file))
    bad = [key for key in NOT_IN_A_PACK if key in layer]
    if bad:
        raise ConfigError(f"{file}: {bad[0]}: not allowed in a domain file")
    name = _metadata_text(file, layer, "name") or file.stem
    description = _metadata_text(file, layer, "description")
    sample = _sample_path(file, layer.pop("sample", None))
    return DomainPack(name, description, file, layer, sample)


def load_domain_pack(ref: str, search_dirs: list[Path] | None = None, base_dir: Path | None = None) -> DomainPack:
    """Resolve and read a pack by name or path (default search: the shipped ``configs/``)."""
    from generation.config import BUNDLED_CONFIGS

    return read_domain_pack(resolve_domain_file(ref, search_dirs or [BUNDLED_CONFIGS], base_dir or Path.cwd()))


def base_pack_layers() -> list[tuple[str, dict[str, Any]]]:
    """The layers beneath every pack, lowest first: the evaluator's default judge rubric, then the base pack."""
    from generation.config import BUNDLED_CONFIGS, read_yaml_mapping

    eval_defaults = BUNDLED_CONFIGS / "eval" / "defaults.yaml"
    rubric = (read_yaml_mapping(eval_defaults).get("judge") or {}).get("rubric")
    base = BUNDLED_CONFIGS / "domains" / f"{BASE_PACK}.yaml"
    base_layer = read_yaml_mapping(base)
    bad = [key for key in (*NOT_IN_A_PACK, *PACK_METADATA, "sample", "modifications") if key in base_layer]
    if bad:
        raise ConfigError(f"{base}: {bad[0]}: not allowed in the base pack")
    layers = [(str(eval_defaults), {"evaluation": {"judge": {"rubric": rubric}}})] if isinstance(rubric, dict) else []
    return layers + [(str(base), base_layer)]


def fill_domain(template: str, domain: str) -> str:
    """Replace the ``{domain}`` field of a template, keeping every other field (``{question}``...) as it is."""
    try:
        parts = list(string.Formatter().parse(template))
    except ValueError:  # malformed: the config validator reports it with its key
        return template
    if not any(field == "domain" for _, field, _, _ in parts):
        return template
    escape = lambda text: text.replace("{", "{{").replace("}", "}}")  # noqa: E731
    out = []
    for literal, field, spec, conversion in parts:
        out.append(escape(literal))
        if field is None:
            continue
        if field == "domain" and not spec and not conversion:
            out.append(escape(domain))
        else:
            out.append("{" + field + (f"!{conversion}" if conversion else "") + (f":{spec}" if spec else "") + "}")
    return "".join(out)


def fill_domain_texts(merged: dict[str, Any], domain: str) -> dict[str, Any]:
    """``merged`` with ``{domain}`` filled in every prompt, rubric and mining-prompt text."""
    merged = copy.deepcopy(merged)
    for path in DOMAIN_TEXTS:
        node: Any = merged
        for key in path:
            node = node.get(key) if isinstance(node, dict) else None
        if isinstance(node, dict):
            for key, value in node.items():
                if isinstance(value, str):
                    node[key] = fill_domain(value, domain)
    return merged


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

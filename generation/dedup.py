"""Near-duplicates: the question filter's index (generation and gather's check across shards) and the
evaluator's Jaccard clusters (``duplicate_prompt``), in one module.

The decision rule is the one the question filter has always used: a text is a near-duplicate when its
RapidFuzz ``ratio`` with a text already in the index reaches ``threshold``; the twin reported is the best
match (the earliest on ties), as ``rapidfuzz.process.extractOne`` gives it.

- While the index holds fewer than ``exact_below`` texts, every text is compared: exactly the old scan.
- From then on, candidates come from MinHash LSH (datasketch ``MinHash``, affine32 scheme, over the byte
  3-grams of the text; ``bands`` bands of ``rows`` values) and only those are verified with the same ratio,
  so the cost per text does not grow with the number of texts: at most ``max_candidates`` texts, those that
  share the most band buckets with the text; each bucket contributes at most ``bucket_cap`` texts per run.
  A near-duplicate whose 3-grams barely overlap (many scattered edits) can be missed: the price of flat
  cost. ``tests/test_dedup.py`` measures recall against the exact scan.
- Memory: the texts as UTF-8 in one ``bytearray`` plus an offset array, and per text ``bands`` 32-bit bucket
  keys and ids in a few sorted numpy runs (merged LSM-style, each merge linear) plus a small dict of recent
  entries: about ``len(text) + 8 * (1 + bands)`` bytes a text, no Python object per text.
"""

from __future__ import annotations

import heapq
import time
from array import array
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from rapidfuzz import fuzz, process

_KEY_BITS = 26  # per-band hash bits; the band number goes above them (keys stay below 2**31)


class _Buckets:
    """Bucket key -> text ids, append-only: sorted numpy runs (oldest first) plus a dict of recent entries."""

    def __init__(self, tail_items: int = 2048):
        self.tail_items = tail_items
        self.tail: dict[int, list[int]] = {}
        self.tail_keys: list[int] = []
        self.tail_ids: list[int] = []
        self.runs: list[tuple[np.ndarray, np.ndarray]] = []

    def add(self, keys: list[int], ident: int) -> None:
        for key in keys:
            self.tail.setdefault(key, []).append(ident)
        self.tail_keys.extend(keys)
        self.tail_ids.extend([ident] * len(keys))
        if len(self.tail_ids) >= self.tail_items * len(keys):
            self._flush()

    def _flush(self) -> None:
        keys = np.array(self.tail_keys, dtype=np.uint32)
        ids = np.array(self.tail_ids, dtype=np.uint32)
        order = np.argsort(keys, kind="stable")
        self.runs.append((keys[order], ids[order]))
        self.tail, self.tail_keys, self.tail_ids = {}, [], []
        while len(self.runs) >= 2 and 2 * len(self.runs[-1][0]) >= len(self.runs[-2][0]):
            (old_k, old_i), (new_k, new_i) = self.runs[-2], self.runs[-1]
            keys, ids = np.concatenate((old_k, new_k)), np.concatenate((old_i, new_i))
            order = np.argsort(keys, kind="stable")  # two sorted runs: a linear merge; equal keys keep id order
            self.runs[-2:] = [(keys[order], ids[order])]

    def lookup(self, keys: list[int], cap: int) -> list[np.ndarray | list[int]]:
        """Ids sharing a bucket with each key (one entry per shared bucket; at most ``cap`` per bucket and run)."""
        found: list[np.ndarray | list[int]] = []
        if self.runs:
            query = np.array(keys, dtype=np.uint32)
            bounds = np.concatenate((query, query + np.uint32(1)))
            n = len(keys)
            for run_keys, run_ids in self.runs:
                positions = np.searchsorted(run_keys, bounds)
                low, high = positions[:n], positions[n:]
                for j in np.flatnonzero(high > low).tolist():
                    start = int(low[j])
                    found.append(run_ids[start : min(int(high[j]), start + cap)])
        for key in keys:
            ids = self.tail.get(key)
            if ids:
                found.append(ids[:cap])
        return found

    def nbytes(self) -> int:
        return sum(k.nbytes + i.nbytes for k, i in self.runs)


class NearDuplicateIndex:
    """Texts seen so far; :meth:`find` returns a near-duplicate of a text among them, :meth:`add` adds one."""

    def __init__(
        self, threshold: float, *, exact_below: int = 2000, bands: int = 16, rows: int = 4, bucket_cap: int = 32,
        max_candidates: int = 24, seed: int = 1,
    ):  # fmt: skip
        if bands >= 2 ** (31 - _KEY_BITS):
            raise ValueError(f"at most {2 ** (31 - _KEY_BITS) - 1} bands")
        self.threshold = threshold
        self.exact_below = exact_below
        self.bands, self.rows = bands, rows
        self.bucket_cap, self.max_candidates = bucket_cap, max_candidates
        self.seed = seed
        self.count = 0
        self.checks = 0
        self.seconds = 0.0  # time spent in find() and add()
        self._small: list[str] | None = []
        self._text = bytearray()
        self._offsets = array("Q", [0])
        self._buckets: _Buckets | None = None

    def __len__(self) -> int:
        return self.count

    def text(self, ident: int) -> str:
        return self._text[self._offsets[ident] : self._offsets[ident + 1]].decode("utf-8")

    def find(self, text: str) -> str | None:
        """The best text in the index whose ratio with ``text`` reaches the threshold, or None."""
        return self._check(text, add=False)

    def add(self, text: str) -> None:
        """Add a text (without checking it)."""
        started = time.perf_counter()
        self._add(text, None)
        self.seconds += time.perf_counter() - started

    def check_and_add(self, text: str) -> str | None:
        """``find`` then, when nothing is found, ``add``: the twin, or None when ``text`` was added."""
        return self._check(text, add=True)

    def _check(self, text: str, add: bool) -> str | None:
        started = time.perf_counter()
        self.checks += 1
        keys = None
        if self._small is not None:
            match = process.extractOne(text, self._small, scorer=fuzz.ratio, score_cutoff=self.threshold) if self._small else None
            twin = match[0] if match else None
        else:
            keys = self._keys(text)
            twin = self._find_lsh(text, keys)
        if add and twin is None:
            self._add(text, keys)
        self.seconds += time.perf_counter() - started
        return twin

    def _add(self, text: str, keys: list[int] | None) -> None:
        self._text += text.encode("utf-8")
        self._offsets.append(len(self._text))
        if self._small is not None:
            self._small.append(text)
            if len(self._small) >= self.exact_below:
                small, self._small = self._small, None
                self._start_lsh()
                for ident, item in enumerate(small):
                    self._buckets.add(self._keys(item), ident)  # type: ignore[union-attr]
        else:
            self._buckets.add(keys if keys is not None else self._keys(text), self.count)  # type: ignore[union-attr]
        self.count += 1

    def nbytes(self) -> int:
        """Memory held for the texts and buckets (not counting the recent-entry dict)."""
        return len(self._text) + self._offsets.itemsize * len(self._offsets) + (self._buckets.nbytes() if self._buckets else 0)

    # ------------------------------------------------------------------------------------- LSH index

    def _start_lsh(self) -> None:
        from datasketch import MinHash

        self._buckets = _Buckets()
        # integers go in as their own hash values (the affine32 scheme mixes them with MurmurHash3's finalizer)
        self._signature = MinHash(num_perm=self.bands * self.rows, seed=self.seed, hashfunc=int, scheme="affine32")
        mix = np.random.RandomState(self.seed).randint(1, 2**31 - 1, size=self.rows, dtype=np.int64)
        self._mix = (mix.astype(np.uint64) << np.uint64(1)) | np.uint64(1)
        self._tags = np.arange(self.bands, dtype=np.uint64) << np.uint64(_KEY_BITS)

    def _keys(self, text: str) -> list[int]:
        """One bucket key per band: the band's MinHash values mixed into 26 bits, tagged with the band number."""
        data = np.frombuffer(f" {text} ".encode("utf-8"), dtype=np.uint8).astype(np.uint32)
        grams = (data[:-2] << np.uint32(16)) | (data[1:-1] << np.uint32(8)) | data[2:]  # byte 3-grams (text is padded)
        signature = self._signature
        signature.clear()
        signature.update_batch(grams.tolist())
        values = signature.hashvalues.astype(np.uint64).reshape(self.bands, self.rows)
        with np.errstate(over="ignore"):
            mixed = (values * self._mix).sum(axis=1, dtype=np.uint64)
        return ((mixed >> np.uint64(64 - _KEY_BITS)) | self._tags).tolist()

    def _find_lsh(self, text: str, keys: list[int]) -> str | None:
        assert self._buckets is not None
        shared: Counter[int] = Counter()
        for part in self._buckets.lookup(keys, self.bucket_cap):
            shared.update(part.tolist() if isinstance(part, np.ndarray) else part)
        if not shared:
            return None
        if len(shared) > self.max_candidates:  # the texts sharing the most buckets (most similar 3-gram sets)
            ids = sorted(ident for ident, _ in heapq.nsmallest(self.max_candidates, shared.items(), key=lambda kv: (-kv[1], kv[0])))
        else:
            ids = sorted(shared)
        match = process.extractOne(text, [self.text(ident) for ident in ids], scorer=fuzz.ratio, score_cutoff=self.threshold)
        return match[0] if match else None


def jaccard_clusters(
    texts: Sequence[str], threshold: float, key: Callable[[str], str], grams: Callable[[str], set[str]], num_perm: int = 128, seed: int = 1
) -> list[int]:  # fmt: skip
    """Cluster id per text for the evaluator's ``duplicate_prompt``: texts whose estimated Jaccard (MinHash over
    ``grams(text)``) is >= threshold share a cluster (datasketch MinHash LSH, union-find); texts with the same
    ``key`` are exact duplicates. The cluster id is the index of its first member."""
    from datasketch import MinHash, MinHashLSH

    parent = list(range(len(texts)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    lsh = MinHashLSH(threshold=threshold, num_perm=num_perm)
    signatures: list[Any] = []
    normalised: dict[str, int] = {}
    for index, text in enumerate(texts):
        exact = key(text)
        if exact in normalised:  # exact duplicate after normalisation
            parent[index] = root(normalised[exact])
            signatures.append(None)
            continue
        normalised[exact] = index
        signature = MinHash(num_perm=num_perm, seed=seed)
        for gram in grams(text) or {""}:
            signature.update(gram.encode("utf-8"))
        for other in lsh.query(signature):
            j = int(other)
            if signature.jaccard(signatures[j]) >= threshold:
                a, b = root(index), root(j)
                parent[max(a, b)] = min(a, b)
        lsh.insert(str(index), signature)
        signatures.append(signature)
    return [root(i) for i in range(len(texts))]

"""A content-addressed generation cache in SQLite (standard library), shared by all explainers.

Images are keyed by sha256(model fingerprint, conditioning, seed, sampler settings) and stored
as PNG (lossless uint8, the same bytes every explainer embeds); embeddings are keyed by image
key and embedder name. Each batch is one transaction in WAL mode, so a run killed mid-way
loses at most the batch in flight, and concurrent runs on one file wait for each other's locks
instead of corrupting it. A run claims the images it is about to generate (a lease row naming the
process), so a second run on the same file waits for them instead of generating them again; a
lease whose process is gone, or that was not renewed in time, is taken over.

A file that is not a readable cache is refused by name (``GenerationCache.repair`` moves it aside
and keeps every readable row); an image whose PNG does not decode is dropped with a warning and
generated again.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import socket
import sqlite3
import threading
import time
import warnings
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

_SCHEMA = """
CREATE TABLE IF NOT EXISTS images (
    key TEXT PRIMARY KEY, model TEXT NOT NULL, conditioning TEXT NOT NULL, seed INTEGER NOT NULL,
    settings TEXT NOT NULL, png BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS embeddings (
    key TEXT NOT NULL, embedder TEXT NOT NULL, dtype TEXT NOT NULL, shape TEXT NOT NULL, data BLOB NOT NULL,
    PRIMARY KEY (key, embedder)
);
CREATE TABLE IF NOT EXISTS leases (key TEXT PRIMARY KEY, owner TEXT NOT NULL, expires REAL NOT NULL);
"""

LEASE_SECONDS = 900.0  # a claim not renewed for this long is taken over (a remote owner that died)


def _owner() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _owner_alive(owner: str) -> bool:
    """False only when ``owner`` is a process of this machine that no longer exists."""
    host, _, pid = owner.rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return True
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class CacheError(ValueError):
    """The cache file cannot be read as a generation cache."""


def generation_key(model: str, conditioning: str, seed: int, settings: Mapping[str, Any]) -> str:
    """Content address of one generated image."""
    payload = json.dumps([model, conditioning, int(seed), dict(settings)], sort_keys=True, default=str)
    return hashlib.sha256(payload.encode()).hexdigest()


def _png(image: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG")
    return buffer.getvalue()


class GenerationCache:
    """SQLite cache of generated images and their embeddings.

    Args:
        path: database file; ``":memory:"`` for a throw-away cache.
        keep_images: False keeps embeddings only (for large audits): an image's row records that it
            was generated, with no pixels; its explainer embeds it before it is dropped, and
            ``get_images`` on it is an error (reports cannot show it; another embedder regenerates).
    """

    def __init__(self, path: str | Path = ":memory:", *, keep_images: bool = True):
        self.path = str(path)
        self.keep_images = bool(keep_images)
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        self._memory: sqlite3.Connection | None = None
        self.owner = _owner()
        try:
            with self._connection() as connection:
                connection.executescript(_SCHEMA)
                connection.execute("SELECT key, png FROM images LIMIT 1").fetchall()
        except sqlite3.DatabaseError as error:
            self._local.connection = None
            raise CacheError(f"{self.path} is not a readable generation cache ({error}); move it away, or run "
                             "with --repair-cache (Python: GenerationCache.repair(path)) to move it aside and keep "
                             "every row that can still be read") from error

    @classmethod
    def repair(cls, path: str | Path) -> tuple[GenerationCache, Path, int]:
        """Move an unreadable cache file aside (``<name>.corrupt-<time>``) and start a new one at
        ``path`` holding every image row that could still be read from it.

        Returns:
            (the new cache, where the old file went, how many image rows were kept).
        """
        path = Path(path)
        aside = path.with_name(f"{path.name}.corrupt-{time.strftime('%Y%m%d-%H%M%S')}")
        os.replace(path, aside)
        for suffix in ("-wal", "-shm"):
            if Path(str(path) + suffix).exists():
                os.replace(str(path) + suffix, str(aside) + suffix)
        cache = cls(path)
        kept = 0
        try:
            old = sqlite3.connect(f"file:{aside}?mode=ro", uri=True)
            rowids = [r[0] for r in old.execute("SELECT rowid FROM images")]
        except sqlite3.DatabaseError:
            rowids, old = [], None
        for rowid in rowids:
            assert old is not None  # rowids are empty otherwise
            try:
                row = old.execute("SELECT * FROM images WHERE rowid = ?", (rowid,)).fetchone()
                if row[5]:  # an embeddings-only row has no PNG to check
                    Image.open(io.BytesIO(row[5])).verify()
            except Exception:  # noqa: BLE001 - an unreadable row of a damaged file: skipped
                continue
            with cache._connection() as connection:
                connection.execute("INSERT OR IGNORE INTO images VALUES (?, ?, ?, ?, ?, ?)", row)
            kept += 1
        if old is not None:
            old.close()
        return cache, aside, kept
    def _connection(self) -> sqlite3.Connection:
        if self.path == ":memory:":
            if self._memory is None:
                self._memory = sqlite3.connect(":memory:", check_same_thread=False)
            return self._memory
        connection = getattr(self._local, "connection", None)
        if connection is None:
            connection = sqlite3.connect(self.path, timeout=120.0)
            connection.execute("PRAGMA journal_mode=WAL")
            connection.execute("PRAGMA synchronous=NORMAL")
            self._local.connection = connection
        return connection

    def _select(self, query: str, keys: Iterable[str], *leading) -> list[tuple]:
        """Rows of ``query`` (with ``{marks}`` for the key placeholders) for these keys, in chunks
        below SQLite's variable limit."""
        keys = list(dict.fromkeys(keys))
        connection = self._connection()
        rows: list[tuple] = []
        for start in range(0, len(keys), 500):
            chunk = keys[start:start + 500]
            rows += connection.execute(query.format(marks=",".join("?" * len(chunk))), [*leading, *chunk]).fetchall()
        return rows

    def has(self, keys: Iterable[str]) -> set[str]:
        """The keys that have a stored image (no image is decoded)."""
        return {row[0] for row in self._select("SELECT key FROM images WHERE key IN ({marks})", keys)}

    def get_images(self, keys: Iterable[str]) -> dict[str, np.ndarray]:
        """Images found for these keys, as uint8 (H, W, 3) arrays."""
        rows = self._select("SELECT key, png FROM images WHERE key IN ({marks})", keys)
        dropped = [key for key, png in rows if not png]
        if dropped:
            raise ValueError(f"{len(dropped)} image(s) were generated into an embeddings-only cache ({self.path}) "
                             "and not kept: use a cache that keeps images to see them or embed them another way")
        return self._decoded(rows, pixels=True)

    def readable(self, keys: Iterable[str]) -> set[str]:
        """The keys whose stored PNG decodes (an embeddings-only row counts); the others are dropped
        with a warning so that they are generated again."""
        return set(self._decoded(self._select("SELECT key, png FROM images WHERE key IN ({marks})", keys),
                                 pixels=False))

    def _decoded(self, rows: list[tuple], *, pixels: bool) -> dict:
        """{key: uint8 (H, W, 3) image (``pixels``) or None (checked only)} of the rows whose PNG
        decodes (an empty one, embeddings-only, passes); the others are dropped with a warning."""
        out: dict[str, np.ndarray | None] = {}
        broken = []
        for key, png in rows:
            try:
                if not png:
                    out[key] = None
                elif pixels:
                    out[key] = np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))
                else:
                    Image.open(io.BytesIO(png)).verify()
                    out[key] = None
            except Exception:  # noqa: BLE001 - PIL raises several types for damaged data
                broken.append(key)
        if broken:
            self.drop(broken)
            warnings.warn(f"{len(broken)} image(s) in {self.path} did not decode; they were removed and will be "
                          "generated again", RuntimeWarning, stacklevel=3)
        return out

    def drop(self, keys: Iterable[str]) -> None:
        """Remove these images and their embeddings."""
        keys = list(keys)
        with self._connection() as connection:
            for start in range(0, len(keys), 500):
                chunk = keys[start:start + 500]
                marks = ",".join("?" * len(chunk))
                connection.execute(f"DELETE FROM images WHERE key IN ({marks})", chunk)
                connection.execute(f"DELETE FROM embeddings WHERE key IN ({marks})", chunk)

    # -- leases: a run claims what it generates, so a concurrent run waits instead of repeating it --
    def claim(self, keys: Iterable[str], seconds: float = LEASE_SECONDS) -> tuple[list[str], list[str]]:
        """Claim the images ``keys`` for this process, in one transaction with the check of what is
        stored, so that an image another run stored meanwhile is never claimed again.

        Returns:
            (keys now this process's to generate, keys another live run is generating); keys already
            stored are in neither.
        """
        keys = list(dict.fromkeys(keys))
        if self.path == ":memory:" or not keys:
            return keys, []
        mine, theirs = [], []
        now = time.time()
        connection = self._connection()
        with connection:
            connection.execute("BEGIN IMMEDIATE")
            stored = {row[0] for row in self._select("SELECT key FROM images WHERE key IN ({marks})", keys)}
            held = {key: (owner, expires) for key, owner, expires in self._select(
                "SELECT key, owner, expires FROM leases WHERE key IN ({marks})", keys)}
            for key in (k for k in keys if k not in stored):
                owner, expires = held.get(key, (None, 0.0))
                if owner is None or owner == self.owner or expires < now or not _owner_alive(owner):
                    mine.append(key)
                else:
                    theirs.append(key)
            connection.executemany("INSERT OR REPLACE INTO leases VALUES (?, ?, ?)",
                                   [(key, self.owner, now + seconds) for key in mine])
        return mine, theirs

    def renew(self, keys: Iterable[str], seconds: float = LEASE_SECONDS) -> None:
        """Extend this process's claims on ``keys``."""
        keys = list(keys)
        if self.path == ":memory:" or not keys:
            return
        with self._connection() as connection:
            connection.executemany("UPDATE leases SET expires = ? WHERE key = ? AND owner = ?",
                                   [(time.time() + seconds, key, self.owner) for key in keys])

    def release(self, keys: Iterable[str]) -> None:
        """Give up this process's claims on ``keys`` (generated, or abandoned)."""
        keys = list(keys)
        if self.path == ":memory:" or not keys:
            return
        with self._connection() as connection:
            connection.executemany("DELETE FROM leases WHERE key = ? AND owner = ?", [(k, self.owner) for k in keys])

    def put_images(self, rows: Iterable[tuple[str, str, str, int, Mapping[str, Any], np.ndarray]]) -> None:
        """Store (key, model, conditioning, seed, settings, image) rows in one transaction."""
        payload = [(key, model, conditioning, int(seed), json.dumps(dict(settings), sort_keys=True, default=str),
                    _png(image) if self.keep_images else b"")
                   for key, model, conditioning, seed, settings, image in rows]
        with self._connection() as connection:
            connection.executemany("INSERT OR IGNORE INTO images VALUES (?, ?, ?, ?, ?, ?)", payload)
            connection.executemany("DELETE FROM leases WHERE key = ?", [(row[0],) for row in payload])

    def get_embeddings(self, keys: Iterable[str], embedder: str) -> dict[str, np.ndarray]:
        """Embeddings by ``embedder`` found for these image keys."""
        rows = self._select("SELECT key, dtype, shape, data FROM embeddings WHERE embedder = ? AND key IN ({marks})",
                            keys, embedder)
        return {key: np.frombuffer(data, dtype=dtype).reshape(json.loads(shape)).copy()
                for key, dtype, shape, data in rows}

    def put_embeddings(self, items: Mapping[str, np.ndarray], embedder: str) -> None:
        payload = [(key, embedder, str(v.dtype), json.dumps(list(v.shape)), np.ascontiguousarray(v).tobytes())
                   for key, v in items.items()]
        with self._connection() as connection:
            connection.executemany("INSERT OR IGNORE INTO embeddings VALUES (?, ?, ?, ?, ?)", payload)

    def __len__(self) -> int:
        return self._connection().execute("SELECT COUNT(*) FROM images").fetchone()[0]

    def keys(self) -> list[str]:
        """Every stored image's key."""
        return [row[0] for row in self._connection().execute("SELECT key FROM images")]

    def conditionings(self) -> list[str]:
        """Every stored conditioning string (the exact text or descriptor sent to the model)."""
        return [row[0] for row in self._connection().execute("SELECT conditioning FROM images")]

"""A content-addressed generation cache in SQLite (standard library), shared by all explainers.

Images are keyed by sha256(model fingerprint, conditioning, seed, sampler settings) and stored
as PNG (lossless uint8, the same bytes every explainer embeds); embeddings are keyed by image
key and embedder name. Each batch is one transaction in WAL mode, so a run killed mid-way
loses at most the batch in flight, and concurrent runs on one file wait for each other's locks
instead of corrupting it.
"""

from __future__ import annotations

import hashlib
import io
import json
import sqlite3
import threading
from pathlib import Path
from typing import Any, Iterable, Mapping, Optional

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
"""


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
        self._memory: Optional[sqlite3.Connection] = None
        with self._connection() as connection:
            connection.executescript(_SCHEMA)

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
        return {key: np.asarray(Image.open(io.BytesIO(png)).convert("RGB")) for key, png in rows}

    def put_images(self, rows: Iterable[tuple[str, str, str, int, Mapping[str, Any], np.ndarray]]) -> None:
        """Store (key, model, conditioning, seed, settings, image) rows in one transaction."""
        payload = [(key, model, conditioning, int(seed), json.dumps(dict(settings), sort_keys=True, default=str),
                    _png(image) if self.keep_images else b"")
                   for key, model, conditioning, seed, settings, image in rows]
        with self._connection() as connection:
            connection.executemany("INSERT OR IGNORE INTO images VALUES (?, ?, ?, ?, ?, ?)", payload)

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

"""Emotion module (paper section 4.2): label each frame by its nearest MEAD expression.

A pipeline folder keeps the database its FCSD was trained with in ``emotion_db/`` (one
``<label>/frames.npy`` per label, rows L2-normalised: cosine similarity does not depend on the
scale); such a pipeline labels each frame by its expression when no label is given, as at training.

The database is built from MEAD-style clips: a folder ``<db>/<emotion label>/<clip>.npy`` (or
``.txt``), each holding a (frames, 100) array of FLAME/DECA expression vectors. A frame gets the
label of the database vector with the highest cosine similarity to its expression (batched matrix
products). The pipeline then embeds each label with the CLIP text encoder
(:meth:`ConsistentAvatarPipeline.embed_emotions`, cached per label).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from metrics.errors import InputError


@dataclass
class ExpressionDatabase:
    vectors: torch.Tensor  # (M, D) float32, rows L2-normalised
    labels: list[str]  # label of each row
    label_names: list[str]  # the distinct labels, sorted

    @classmethod
    def from_arrays(cls, clips: dict[str, list[np.ndarray]]) -> ExpressionDatabase:
        """``{label: [array (frames, D), ...]}`` -> database of every frame of every clip."""
        rows, labels = [], []
        for label in sorted(clips):
            for clip in clips[label]:
                clip = np.atleast_2d(np.asarray(clip, dtype=np.float32))
                rows.append(clip)
                labels += [label] * len(clip)
        if not rows:
            raise InputError("expression database is empty")
        vectors = torch.nn.functional.normalize(torch.from_numpy(np.concatenate(rows)), dim=1)
        return cls(vectors, labels, sorted(clips))

    @classmethod
    def from_folder(cls, folder: str | Path) -> ExpressionDatabase:
        """Read ``<folder>/<label>/<clip>.npy|.txt`` arrays of per-frame expression vectors."""
        folder = Path(folder)
        if not folder.is_dir():
            raise InputError(f"expression database folder {folder} does not exist")
        clips: dict[str, list[np.ndarray]] = {}
        for label_dir in sorted(p for p in folder.iterdir() if p.is_dir()):
            for path in sorted(label_dir.iterdir()):
                if path.suffix == ".npy":
                    clips.setdefault(label_dir.name, []).append(np.load(path))
                elif path.suffix == ".txt":
                    clips.setdefault(label_dir.name, []).append(np.loadtxt(path, ndmin=2))
        if not clips:
            raise InputError(f"{folder} holds no <label>/<clip>.npy or .txt expression arrays")
        return cls.from_arrays(clips)

    def save(self, folder: str | Path) -> Path:
        """Write ``folder/<label>/frames.npy`` (that label's rows, in order), read back by :meth:`from_folder`
        as the same database (same rows in the same order, so the same labels)."""
        folder = Path(folder)
        for name in self.label_names:
            rows = self.vectors[[i for i, label in enumerate(self.labels) if label == name]]
            (folder / name).mkdir(parents=True, exist_ok=True)
            np.save(folder / name / "frames.npy", rows.numpy())
        return folder

    def label(self, expressions: np.ndarray | torch.Tensor, chunk: int = 4096) -> list[str]:
        """Label of the most cosine-similar database frame for each row of ``expressions`` (N, D)."""
        query = torch.as_tensor(np.asarray(expressions, dtype=np.float32))
        if query.ndim != 2 or query.shape[1] != self.vectors.shape[1]:
            raise InputError(f"expressions must be (N, {self.vectors.shape[1]}), got {tuple(query.shape)}")
        query = torch.nn.functional.normalize(query, dim=1)
        best = torch.cat([(q @ self.vectors.T).argmax(dim=1) for q in query.split(chunk)])
        return [self.labels[i] for i in best.tolist()]

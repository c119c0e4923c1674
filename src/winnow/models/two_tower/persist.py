"""Persistence of a fitted ``TwoTowerRecommender`` as data, no pickle: ``model.json`` (name,
params, sizes, content structure), ``arrays.npz`` (item table, user histories / attributes,
item counts), ``weights.safetensors`` (the towers' state dict) and, when fitted, ``text/`` (the
TF-IDF+SVD text encoder). ``TwoTowerRecommender.save`` / ``load`` call these."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, TypeVar, cast

import numpy as np

from winnow.core.errors import BundleError
from winnow.models.content import StructuredContent, TfidfSvdEncoder
from winnow.models.base import Recommender
from winnow.models.two_tower.towers import ItemTable

# model.py imports this module, so the model is typed by its base class here (an import back
# would be a cycle): ``model`` / ``cls`` are a TwoTowerRecommender and its class
T = TypeVar("T", bound=Recommender)


def save_two_tower(model: Any, directory: str | Path) -> None:
    """Write a fitted model's files into ``directory`` (created if missing)."""
    from safetensors.torch import save_file

    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    t = model.table_
    np.savez(d / "arrays.npz", cats=t.cats, creator=t.creator, age=t.age, pop=t.pop, text=t.text,
             user_hist=model.user_hist_, user_hist_w=model.user_hist_w_, user_attrs=model.user_attrs_,
             user_declared=model.user_declared_, user_pseudo=model.user_pseudo_,
             item_counts=model.item_counts_)
    save_file({k: v.contiguous().clone() for k, v in model.net_.state_dict().items()},
              str(d / "weights.safetensors"))
    if model.text_encoder_ is not None:
        model.text_encoder_.save(d / "text")
    meta = {"model": model.name, "params": model.get_params(), "n_users": model.n_users_,
            "n_items": model.n_items_, "structure": model.structure_.to_json(),
            "text_encoder": model.text_encoder_ is not None}
    (d / "model.json").write_text(json.dumps(meta, indent=2), encoding="utf-8")


def load_two_tower(cls: type[T], directory: str | Path) -> T:
    """A model of class ``cls`` from ``save_two_tower``'s files; BundleError when ``model.json``
    names another model. The caller derives the item vectors (``_refresh_item_vectors``)."""
    from safetensors.torch import load_file

    d = Path(directory)
    meta = json.loads((d / "model.json").read_text(encoding="utf-8"))
    if meta.get("model") != cls.name:
        raise BundleError(f"{d} holds a {meta.get('model')!r} model, not {cls.name!r}")
    model: Any = cls(**meta["params"])
    model.structure_ = StructuredContent.from_json(meta["structure"])
    model.text_encoder_ = TfidfSvdEncoder.load(d / "text") if meta["text_encoder"] else None
    with np.load(d / "arrays.npz", allow_pickle=False) as z:
        a = {k: z[k] for k in z.files}
    model.table_ = ItemTable(a["cats"], a["creator"], a["age"], a["pop"], a["text"])
    model.user_hist_, model.user_attrs_ = a["user_hist"], a["user_attrs"]
    rec = 0.5 ** (np.arange(model.config.history - 1, -1, -1, dtype=np.float32) / model.config.half_life)
    model.user_hist_w_ = a.get("user_hist_w", np.where(model.user_hist_ > 0, rec, 0).astype(np.float32))
    model.user_declared_, model.user_pseudo_ = a["user_declared"], a["user_pseudo"]
    model.item_counts_ = a["item_counts"]
    model.net_ = model.build_net(model.table_, int(meta["n_items"]))
    model.net_.load_state_dict(load_file(str(d / "weights.safetensors")))
    model.net_.eval()
    model.n_users_, model.n_items_ = int(meta["n_users"]), int(meta["n_items"])
    return cast(T, model)

"""The learned ranker: LightGBM with the lambdarank objective over candidate lists.

Training input is a feature matrix (rows = candidates, columns = ``FeatureSpec.names``), binary
or graded labels and the list sizes (rows of one list are contiguous). Early stopping watches
NDCG@``eval_at`` on a validation set of whole lists. With ``init_weights`` the trees learn a
residual: every row starts from a fixed blend of feature columns (e.g. the retrieval sources'
per-list z-scores, NaN counted as ``init_fill``), LightGBM's ``init_score``, and ``predict`` adds
the same blend back, so a ranker with few (early-stopped) trees still orders the candidates by
the blend instead of by a handful of coarse, tied leaf values. Saved as LightGBM's own text model
(``ranker.txt``) plus ``ranker.json`` (parameters, best iteration, feature spec, importance):
plain data, no pickle. A position-bias correction (``fit(bias=...)``, winnow.models.position_bias)
trains on logged slates with inverse-propensity row weights or LightGBM's unbiased lambdarank;
its examination curve is kept in ``ranker.json`` (``position_bias``).
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from collections.abc import Callable
from typing import Any, Self

import lightgbm as lgb
import numpy as np

from winnow.core.errors import BundleError, NotFittedError
from winnow.features.spec import FeatureSpec
from winnow.models.position_bias import Correction, weighted_ndcg

DEFAULT_PARAMS: dict[str, Any] = {
    "objective": "lambdarank", "metric": "ndcg", "eval_at": [10], "learning_rate": 0.05,
    "num_leaves": 31, "min_data_in_leaf": 50, "feature_fraction": 0.8, "bagging_fraction": 0.8,
    "bagging_freq": 1, "lambda_l2": 1.0, "lambdarank_truncation_level": 20, "verbosity": -1,
}


class LambdaRanker:
    """LightGBM lambdarank ranker bound to a ``FeatureSpec``.

    Args:
        spec: the feature columns (order and categorical columns).
        params: LightGBM parameters overriding DEFAULT_PARAMS.
        num_boost_round: maximum trees; early_stopping_rounds: patience on validation NDCG.
        seed: LightGBM seed; num_threads: training threads (0 = every core: OpenMP's default).
        init_weights: feature name -> weight of the fixed base score the trees start from
            (see module docstring); names not in the spec are ignored (a source the dataset
            lacks), so one default serves every source set, and weight 0 drops an entry
            (config overrides merge into the defaults). init_fill: value of a NaN cell.
    """

    def __init__(self, spec: FeatureSpec, *, params: dict[str, Any] | None = None,
                 num_boost_round: int = 1000, early_stopping_rounds: int = 50, seed: int = 0,
                 num_threads: int = 0, init_weights: dict[str, float] | None = None,
                 init_fill: float = -3.0) -> None:
        self.spec = spec
        self.init_weights = {k: float(v) for k, v in (init_weights or {}).items()
                             if k in spec.names and float(v) != 0.0}
        self.init_fill = float(init_fill)
        self.params = {**DEFAULT_PARAMS, **(params or {}), "seed": seed, "num_threads": num_threads}
        self.num_boost_round = num_boost_round
        self.early_stopping_rounds = early_stopping_rounds
        self.booster_: lgb.Booster | None = None
        self.best_iteration_: int = 0
        self.valid_ndcg_: float | None = None
        self.position_bias_: dict[str, Any] = {"mode": "none"}

    def init_score(self, x: np.ndarray) -> np.ndarray:
        """float64 [n] base score of each row: sum of weight * column (NaN -> init_fill); zeros
        without ``init_weights``."""
        out = np.zeros(len(x))
        for name, w in self.init_weights.items():
            col = np.asarray(x[:, self.spec.names.index(name)], np.float64)
            out += w * np.where(np.isnan(col), self.init_fill, col)
        return out

    def _dataset(self, x: np.ndarray, y: np.ndarray, groups: np.ndarray,
                 reference: lgb.Dataset | None = None, *, weight: np.ndarray | None = None,
                 position: np.ndarray | None = None) -> lgb.Dataset:
        if x.shape[1] != len(self.spec.names):
            raise ValueError(f"feature matrix has {x.shape[1]} columns, spec has {len(self.spec.names)}")
        if int(np.sum(groups)) != len(x) or len(y) != len(x):
            raise ValueError(f"groups sum to {int(np.sum(groups))} and labels have {len(y)} rows "
                             f"for {len(x)} feature rows")
        for name, arr in (("weight", weight), ("position", position)):
            if arr is not None and len(arr) != len(x):
                raise ValueError(f"{name} has {len(arr)} rows for {len(x)} feature rows")
        init = self.init_score(x) if self.init_weights else None
        return lgb.Dataset(x, label=y, group=groups, feature_name=self.spec.names, init_score=init,
                           weight=weight, position=position,
                           categorical_feature=self.spec.categorical, reference=reference,
                           free_raw_data=True, params={"verbosity": -1})

    def fit(self, x: np.ndarray, y: np.ndarray, groups: np.ndarray, *,
            valid: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
            bias: Correction | None = None, valid_position: np.ndarray | None = None) -> Self:
        """Train on lists (``groups`` = rows per list, in row order); stop early on ``valid``.
        ``bias``: a position-bias correction of the training rows (winnow.models.position_bias:
        row weights and/or shown positions); its report is kept as ``position_bias_`` and saved.
        With a bias curve and ``valid_position`` (the validation rows' shown positions), early
        stopping watches NDCG on inverse-propensity weighted validation clicks
        (``ips_ndcg@k``) instead of the clicks as logged."""
        bias = bias or Correction()
        self.position_bias_ = bias.report
        train = self._dataset(x, y, groups, weight=bias.weight, position=bias.position)
        callbacks: list[Callable[..., Any]] = []
        valid_sets = []
        params, feval, at = dict(self.params), None, self.params["eval_at"][0]
        metric = f"ndcg@{at}"
        if valid is not None:
            valid_sets = [self._dataset(*valid, reference=train)]
            callbacks.append(lgb.early_stopping(self.early_stopping_rounds, verbose=False))
            w = bias.valid_weight(valid[1], valid_position)
            if w is not None:
                metric, params["metric"] = f"ips_ndcg@{at}", "None"
                vg = np.asarray(valid[2])

                def feval(preds: np.ndarray, _data: lgb.Dataset) -> tuple[str, float, bool]:
                    return metric, weighted_ndcg(preds, valid[1], w, vg, at=at), True
        self.booster_ = lgb.train(params, train, num_boost_round=self.num_boost_round,
                                  valid_sets=valid_sets, valid_names=["valid"][:len(valid_sets)],
                                  callbacks=callbacks, feval=feval)
        self.best_iteration_ = int(self.booster_.best_iteration or self.booster_.current_iteration())
        if valid is not None:
            self.valid_ndcg_ = float(self.booster_.best_score["valid"][metric])
            self.position_bias_ = {**self.position_bias_, "valid_metric": metric}
        return self

    def _check(self) -> lgb.Booster:
        if self.booster_ is None:
            raise NotFittedError("LambdaRanker is not fitted; call fit() or load() first")
        return self.booster_

    def compile(self) -> bool:
        """Compile the trees to native code with lleaves (LLVM); predict() then uses them
        (same outputs, ~9x faster for 500 rows, see bench/rank.py). False when lleaves is not
        installed. Compiled in memory: nothing is written next to the model."""
        booster = self._check()
        try:
            import lleaves
        except ImportError:
            return False
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "ranker.txt"
            booster.save_model(str(path), num_iteration=self.best_iteration_)
            model = lleaves.Model(model_file=str(path))
            model.compile()
        self.compiled_ = model
        self._entry = _raw_entry(model)
        return True

    def predict(self, x: np.ndarray, *, num_threads: int = 1) -> np.ndarray:
        """float64 [n] scores (higher = better): the init blend + the best iteration's trees."""
        compiled = getattr(self, "compiled_", None)
        entry = getattr(self, "_entry", None)
        trees: Any
        if entry is not None and num_threads <= 1 and x.ndim == 2 and x.shape[1] == len(self.spec.names) \
                and 0 < len(x) < 2**31 - 1:  # lleaves.Model.predict's checks
            data = np.ascontiguousarray(x, dtype=np.float64)
            trees = np.zeros(len(data), np.float64)
            entry(data.__array_interface__["data"][0], trees.__array_interface__["data"][0], 0, len(data))
        elif compiled is not None:
            trees = compiled.predict(np.ascontiguousarray(x, dtype=np.float64), n_jobs=max(num_threads, 1))
        else:
            trees = self._check().predict(x, num_iteration=self.best_iteration_, num_threads=num_threads)
        return trees + self.init_score(x) if self.init_weights else trees

    def contributions(self, x: np.ndarray, *, num_threads: int = 1) -> np.ndarray:
        """float64 [n, n_features + 1] SHAP contributions (pred_contrib) of the trees; the last
        column is the bias plus the init blend, so each row sums to ``predict``."""
        out = np.asarray(self._check().predict(x, num_iteration=self.best_iteration_, pred_contrib=True,
                                               num_threads=num_threads))
        if self.init_weights:
            out[:, -1] += self.init_score(x)
        return out

    def top_contributions(self, x: np.ndarray, *, top: int = 5) -> list[list[dict[str, float]]]:
        """Per row, the ``top`` features with the largest |contribution|: name, value, contribution."""
        contrib = self.contributions(x)[:, :-1]
        names = self.spec.names
        out = []
        for r in range(len(x)):
            order = np.argsort(-np.abs(contrib[r]))[:top]
            out.append([{"feature": names[j], "value": float(x[r, j]), "contribution": float(contrib[r, j])}
                        for j in order])
        return out

    def importance(self) -> list[dict[str, Any]]:
        """Features by total gain, best first: name, gain, gain share, splits."""
        b = self._check()
        gain = b.feature_importance("gain", iteration=self.best_iteration_)
        split = b.feature_importance("split", iteration=self.best_iteration_)
        total = float(gain.sum()) or 1.0
        rows = [{"feature": n, "gain": float(g), "share": float(g) / total, "splits": int(s)}
                for n, g, s in zip(self.spec.names, gain, split, strict=True)]
        return sorted(rows, key=lambda r: -r["gain"])

    def save(self, directory: str | Path) -> None:
        """Write ``ranker.txt`` (LightGBM text model) and ``ranker.json`` (spec, params, report)."""
        b = self._check()
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        b.save_model(str(d / "ranker.txt"), num_iteration=self.best_iteration_)
        meta = {"model": "lambdarank", "params": self.params, "best_iteration": self.best_iteration_,
                "valid_ndcg": self.valid_ndcg_, "position_bias": self.position_bias_,
                "init_weights": self.init_weights, "init_fill": self.init_fill, "feature_spec": self.spec.to_json(),
                "importance": self.importance()}
        (d / "ranker.json").write_text(json.dumps(meta, indent=2), encoding="utf-8")

    @classmethod
    def load(cls, directory: str | Path) -> LambdaRanker:
        """Inverse of save(); BundleError when a file is missing or does not match the spec."""
        d = Path(directory)
        try:
            meta = json.loads((d / "ranker.json").read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise BundleError(f"ranker metadata missing: {d / 'ranker.json'}") from None
        except json.JSONDecodeError as exc:
            raise BundleError(f"{d / 'ranker.json'}: invalid JSON: {exc}") from None
        spec = FeatureSpec.from_json(meta.get("feature_spec"), source=str(d / "ranker.json"))
        if not (d / "ranker.txt").is_file():
            raise BundleError(f"ranker model missing: {d / 'ranker.txt'}")
        try:
            booster = lgb.Booster(model_file=str(d / "ranker.txt"))
        except lgb.basic.LightGBMError as exc:
            raise BundleError(f"{d / 'ranker.txt'}: not a LightGBM model: {exc}") from None
        if booster.feature_name() != spec.names:
            raise BundleError(f"{d / 'ranker.txt'}: model features differ from the feature spec")
        params = {k: v for k, v in meta["params"].items() if k not in ("seed", "num_threads")}
        init = meta.get("init_weights") or {}
        unknown = sorted(set(init) - set(spec.names))
        if unknown:
            raise BundleError(f"{d / 'ranker.json'}: init_weights name features not in the spec: {unknown}")
        model = cls(spec, params=params, seed=meta["params"].get("seed", 0), init_weights=init,
                    init_fill=float(meta.get("init_fill", -3.0)))
        model.booster_ = booster
        model.best_iteration_ = booster.current_iteration()
        model.valid_ndcg_ = meta.get("valid_ndcg")
        model.position_bias_ = meta.get("position_bias") or {"mode": "none"}
        return model


def _raw_entry(model: Any) -> Any:
    """The compiled trees' entry point (lleaves 1.3: ``f(data*, out*, start, end)``, float64, the
    GIL released during the call) typed to take plain addresses, or None when this lleaves
    does not expose it. ``lleaves.Model.predict`` passes ``ndarray.ctypes.data_as`` pointers,
    each of which leaves a reference cycle behind: two per request, which kept the cyclic
    collector running full collections (15-48 ms pauses) in a serving worker."""
    import ctypes

    func = getattr(model, "_c_entry_func", None)
    if func is None or getattr(model, "use_fp64", None) is not True:
        return None
    address = ctypes.cast(func, ctypes.c_void_p).value
    if not address:
        return None
    return ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int32, ctypes.c_int32)(address)

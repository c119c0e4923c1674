"""The MiniLM text encoder's rate and quality on a home's item texts, per CPU path: what the
two-tower's (or the content source's) text setup costs at a catalog's size.

    python bench/text_encoder_rate.py --home /tmp/tt-1m --sample 4000 --threads 2 --downstream \
        --json bench/results/text_encoder_rate.json

Reads the catalog from the home's store (read-only), builds every item's text as training does
(``models.content.item_texts``), counts the distinct non-empty texts (what training encodes on
a first run; a retrain encodes only new or changed ones, winnow.models.text_cache), then for
each variant times one encode of the first ``--sample`` distinct texts on ``--threads`` torch
threads (wall and this process's CPU time; the model load is not timed):

- ``fp32`` -- the current path (sentence-transformers sorts the texts by length, batches of 64);
- ``fp32 unsorted`` -- the same model fed batch by batch in catalog order (what sorting saves);
- ``fp32 max_tokens=128`` -- a word-piece cap (``[models.two_tower] text_max_tokens``);
- ``int8`` -- torch dynamic int8 quantisation of the Linear layers (``text_precision = "int8"``);
- ``ort fp32`` / ``ort int8`` -- onnxruntime on the same weights exported with torch.onnx (int8:
  onnxruntime's dynamic per-channel quantisation), measured only when onnxruntime and onnx import
  (they are not winnow dependencies; see the JSON's ``ort`` entry).

Quality of each variant: cosine of its vectors with the fp32 vectors of the same texts (mean and
1st percentile). The catalog's item texts are short (no token cap bites), so every variant is
also run on ``--long`` texts made by joining 8 catalog texts (~200 word pieces, like product
descriptions). ``--downstream``: item cold start on ml-100k (bench/coldstart.py ``items``: 20%
of items held out, two-tower with MiniLM text, NDCG@10, seeds 0 1 2) per variant whose vectors
differ there from fp32. The whole catalog's first encode is each rate extrapolated to the
distinct texts, labelled so.

``--cache-scale``: instead, the text-vector cache (winnow.models.text_cache) on every catalog text
with a seeded random 384-d stand-in encoder (the cache's own cost, not MiniLM's): a first run
(all encoded, the file written), a retrain with nothing changed, one with 1% of texts changed;
wall / CPU seconds, the file's size and the process's peak RSS (the stand-in's arrays included).
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from winnow.core.config import load_config
from winnow.models.content import MiniLMEncoder, load_minilm

sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench/coldstart.py for --downstream

Encode = Callable[[Sequence[str]], np.ndarray]


def catalog_texts(home: str) -> list[str]:
    """Every item's ``title. text`` (as ``item_texts``), read-only from the home's SQLite store."""
    url = load_config(home).store_url()
    path = url.removeprefix("sqlite:///")
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        rows = con.execute("SELECT title, text FROM items ORDER BY rowid").fetchall()
    finally:
        con.close()
    return [f"{a or ''}. {b}".strip(" .") if b else (a or "").strip() for a, b in rows]


def unsorted(batch: int = 64) -> Encode:
    """fp32 fed one catalog-order batch at a time (sentence-transformers sorts inside a call)."""
    model = load_minilm("fp32")

    def encode(texts: Sequence[str]) -> np.ndarray:
        parts = [model.encode(list(texts[i:i + batch]), batch_size=batch, show_progress_bar=False,
                              normalize_embeddings=True, convert_to_numpy=True) for i in range(0, len(texts), batch)]
        return np.vstack(parts).astype(np.float32)
    return encode


def ort_encoders(threads: int, workdir: Path) -> dict[str, Encode] | str:
    """onnxruntime fp32 / int8 encoders of the shipped weights, or why they cannot be built."""
    try:
        import onnxruntime as ort
        import torch
        from onnxruntime.quantization import QuantType, quantize_dynamic
    except ImportError as exc:
        return f"not measured: {exc}"
    st = load_minilm("fp32")
    tok, bert = st.tokenizer, st[0].auto_model.eval()

    class Last(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.bert = bert

        def forward(self, ids: Any, mask: Any, types: Any) -> Any:
            return self.bert(input_ids=ids, attention_mask=mask, token_type_ids=types).last_hidden_state

    names = ["input_ids", "attention_mask", "token_type_ids"]
    ex = tok(["an example", "another example text"], padding=True, return_tensors="pt")
    fp32, int8 = workdir / "minilm.onnx", workdir / "minilm_int8.onnx"
    torch.onnx.export(Last().eval(), tuple(ex[n] for n in names), str(fp32), input_names=names,
                      output_names=["hidden"], dynamic_axes={n: {0: "b", 1: "s"} for n in [*names, "hidden"]},
                      opset_version=17, dynamo=False)
    quantize_dynamic(str(fp32), str(int8), weight_type=QuantType.QInt8, per_channel=True)

    def make(path: Path) -> Encode:
        so = ort.SessionOptions()
        so.intra_op_num_threads, so.inter_op_num_threads = threads, 1
        sess = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])

        def encode(texts: Sequence[str]) -> np.ndarray:
            order = np.argsort([-len(t) for t in texts], kind="stable")
            out = np.zeros((len(texts), 384), np.float32)
            for i in range(0, len(texts), 64):
                idx = order[i:i + 64]
                e = tok([texts[j] for j in idx], padding=True, truncation=True, max_length=256, return_tensors="np")
                h = sess.run(None, {n: e[n].astype(np.int64) for n in names})[0]
                m = e["attention_mask"][..., None].astype(np.float32)
                v = (h * m).sum(1) / np.maximum(m.sum(1), 1e-9)
                out[idx] = v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12)
            return out
        return encode
    return {"ort fp32": make(fp32), "ort int8": make(int8)}


def timed(encode: Encode, texts: Sequence[str]) -> tuple[np.ndarray, float, float]:
    encode(texts[:64])  # warm-up (lazy loads, first-call allocations): not part of the rate
    t0, c0 = time.perf_counter(), time.process_time()
    v = encode(texts)
    return v, time.perf_counter() - t0, time.process_time() - c0


def cosines(v: np.ndarray, ref: np.ndarray) -> dict[str, float]:
    c = (v * ref).sum(axis=1)
    return {"mean": round(float(c.mean()), 5), "p1": round(float(np.percentile(c, 1)), 5),
            "min": round(float(c.min()), 5)}


def downstream(variant: str, encode: Encode, seeds: list[int]) -> dict[str, float]:
    """ml-100k item cold start (bench/coldstart.py items) with ``encode`` as the MiniLM encoder."""
    from unittest import mock

    from coldstart import _mean, items_bench

    from winnow.evaluation.datasets import load_named_dataset

    cfg = load_config(home=Path(tempfile.mkdtemp(prefix="tenc-bench-")))
    ds = load_named_dataset("ml-100k", cfg)
    with mock.patch.object(MiniLMEncoder, "encode", lambda self, texts: encode(texts)):
        rows = _mean([items_bench(cfg, ds, s, "minilm") for s in seeds])
    r = rows["two_tower (minilm)"]
    return {"ndcg@10": r["ndcg@10"], "recall@10": r["recall@10"], "fit_seconds": r["fit_seconds"]}


class RandomEncoder:
    """Seeded random unit vectors, 384-d, standing in for MiniLM to time the cache alone."""

    backend, dim, cache_id = "minilm", 384, "bench random 384"

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        v = np.random.default_rng(len(texts)).standard_normal((len(texts), self.dim), dtype=np.float32)
        v /= np.linalg.norm(v, axis=1, keepdims=True)
        return v


def cache_scale(texts: list[str]) -> dict[str, Any]:
    import resource
    import shutil

    from winnow.models.text_cache import cache_file, encode_cached

    out: dict[str, Any] = {"texts": len(texts)}
    d = Path(tempfile.mkdtemp(prefix="tenc-cache-"))
    try:
        changed = [t + " v2" if i % 100 == 0 else t for i, t in enumerate(texts)]
        for label, ts in (("first", texts), ("nothing changed", texts), ("1% changed", changed)):
            t0, c0 = time.perf_counter(), time.process_time()
            v, rep = encode_cached(RandomEncoder(), ts, cache=d)
            del v
            out[label] = {"wall_s": round(time.perf_counter() - t0, 1), "cpu_s": round(time.process_time() - c0, 1),
                          "encoded": rep["encoded"], "cached": rep["cached"]}
            print(label, out[label], flush=True)
        out["file_mib"] = round(cache_file(d, "minilm").stat().st_size / 2**20, 1)
    finally:
        shutil.rmtree(d, ignore_errors=True)
    out["process_peak_rss_mib"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--home", required=True)
    ap.add_argument("--sample", type=int, default=4000)
    ap.add_argument("--long", type=int, default=500, help="long texts (8 catalog texts joined) per variant")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--downstream", action="store_true", help="ml-100k item cold start per variant")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--cache-scale", action="store_true", help="time the text-vector cache instead")
    ap.add_argument("--json", required=True)
    args = ap.parse_args()
    if args.cache_scale:
        res = {"home": args.home, "cache": cache_scale(catalog_texts(args.home)), "load_at_end": os.getloadavg()}
        Path(args.json).write_text(json.dumps(res, indent=1))
        print(json.dumps(res, indent=1))
        return
    import torch

    torch.set_num_threads(args.threads)
    texts = catalog_texts(args.home)
    distinct = list(dict.fromkeys(t for t in texts if t))
    sample = distinct[:args.sample]
    long = [" ".join(distinct[i:i + 8]) for i in range(0, 8 * args.long, 8)][:args.long]
    variants: dict[str, Encode] = {
        "fp32": MiniLMEncoder().encode,
        "fp32 unsorted": unsorted(),
        "fp32 max_tokens=128": MiniLMEncoder(max_tokens=128).encode,
        "int8": MiniLMEncoder(precision="int8").encode,
    }
    with tempfile.TemporaryDirectory() as tmp:
        ort = ort_encoders(args.threads, Path(tmp))
        if isinstance(ort, dict):
            variants.update(ort)
        ref = ref_long = None
        rows: dict[str, dict[str, Any]] = {}
        for name, encode in variants.items():
            v, wall, cpu = timed(encode, sample)
            vl, wall_l, cpu_l = timed(encode, long)
            ref = v if ref is None else ref
            ref_long = vl if ref_long is None else ref_long
            rate = len(sample) / cpu
            rows[name] = {"texts_per_cpu_s": round(rate, 1), "texts_per_wall_s": round(len(sample) / wall, 1),
                          "cpu_s": round(cpu, 2), "wall_s": round(wall, 2),
                          "cos_fp32": cosines(v, ref),
                          "long": {"texts_per_cpu_s": round(len(long) / cpu_l, 1),
                                   "texts_per_wall_s": round(len(long) / wall_l, 1), "cos_fp32": cosines(vl, ref_long)},
                          "extrapolated_first_encode_cpu_min": round(len(distinct) / rate / 60, 1)}
            print(name, json.dumps(rows[name]), flush=True)
        if args.downstream:
            titles = [str(t) for t in _ml100k_texts()]
            base = variants["fp32"](titles)
            for name, encode in variants.items():
                same = name != "fp32" and cosines(encode(titles), base)["min"] > 1 - 1e-6
                rows[name]["ml100k_cold_items"] = ({"same_vectors_as": "fp32"} if same
                                                   else downstream(name, encode, args.seeds))
                print(name, rows[name]["ml100k_cold_items"], flush=True)
    out = {"home": args.home, "items": len(texts), "distinct_texts": len(distinct), "sample": len(sample),
           "long_texts": len(long), "long_chars_mean": round(float(np.mean([len(t) for t in long])), 1),
           "threads": args.threads, "load_at_end": os.getloadavg(), "variants": rows,
           "ort": "measured (onnxruntime + onnx import)" if isinstance(ort, dict) else ort,
           "example": sample[0][:120]}
    Path(args.json).write_text(json.dumps(out, indent=1))
    print(f"\n{'variant':22s}{'texts/CPU-s':>12s}{'texts/wall-s':>13s}{'cos mean':>9s}{'cos p1':>8s}"
          f"{'long/CPU-s':>11s}{'long cos p1':>12s}{'1M CPU-min':>11s}{'ml100k NDCG':>12s}")
    for name, r in rows.items():
        nd = r.get("ml100k_cold_items", {})
        nd_s = f"{nd['ndcg@10']:.4f}" if "ndcg@10" in nd else ("= fp32" if nd else "-")
        print(f"{name:22s}{r['texts_per_cpu_s']:>12.1f}{r['texts_per_wall_s']:>13.1f}{r['cos_fp32']['mean']:>9.4f}"
              f"{r['cos_fp32']['p1']:>8.4f}{r['long']['texts_per_cpu_s']:>11.1f}{r['long']['cos_fp32']['p1']:>12.4f}"
              f"{r['extrapolated_first_encode_cpu_min']:>11.1f}{nd_s:>12s}")


def _ml100k_texts() -> list[str]:
    from winnow.evaluation.datasets import load_named_dataset
    from winnow.models.content import item_texts

    cfg = load_config(home=Path(tempfile.mkdtemp(prefix="tenc-bench-")))
    return item_texts(load_named_dataset("ml-100k", cfg).items)


if __name__ == "__main__":
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    main()

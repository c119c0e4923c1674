"""The MiniLM text encoder's rate on a home's item texts: what the two-tower's (or the content
source's) text setup costs at a catalog's size.

    python bench/text_encoder_rate.py --home /tmp/tt-1m --sample 4000 --json bench/results/minilm_rate_1m.json

Reads the catalog from the home's store, builds every item's text as training does
(``models.content.item_texts``), counts the distinct non-empty texts (what ``encode_texts``
would encode), loads the encoder, then times one ``encode`` of ``--sample`` distinct texts in
this process's CPU time (run it with OMP_NUM_THREADS=1 for one thread). The whole catalog's cost
is that rate extrapolated to the distinct texts, and labelled so in the JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

from winnow.core.config import load_config
from winnow.data.open_store import open_store
from winnow.models.content import MiniLMEncoder, item_texts


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--home", required=True)
    ap.add_argument("--sample", type=int, default=4000)
    ap.add_argument("--json", required=True)
    args = ap.parse_args()
    store = open_store(load_config(args.home).store_url())
    try:
        texts = item_texts(store.read_items())
    finally:
        store.close()
    distinct = list(dict.fromkeys(t for t in texts if t))
    encoder = MiniLMEncoder()
    encoder.encode(distinct[:64])  # loads the model: not part of the rate
    sample = distinct[:args.sample]
    t0, c0 = time.perf_counter(), time.process_time()
    encoder.encode(sample)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    rate = len(sample) / cpu
    out = {"home": args.home, "items": len(texts), "distinct_texts": len(distinct), "sample": len(sample),
           "wall_s": round(wall, 1), "cpu_s": round(cpu, 1), "texts_per_cpu_s": round(rate, 1),
           "omp_num_threads": os.environ.get("OMP_NUM_THREADS"), "load": os.getloadavg(),
           "extrapolated_cpu_min_all_distinct": round(len(distinct) / rate / 60, 1), "example": sample[0][:120]}
    Path(args.json).write_text(json.dumps(out, indent=1))
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()

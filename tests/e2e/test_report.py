"""`winnow evaluate --report FILE.html`: same numbers as `evaluate`, plots embedded, opens offline."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from dashboard_harness import CHROMIUM_ARGS, Console, require_browser

from winnow.core.config import load_config
from winnow.evaluation.datasets import load_named_dataset
from winnow.evaluation.report import decile_exposure, evaluate_for_report, popularity_deciles, render_html
from winnow.evaluation.runner import evaluate_models

DATA = "synthetic:200,300,6000"
TIMINGS = {"fit_seconds", "recommend_ms_per_user", "fit_seconds_std", "recommend_ms_per_user_std"}


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory):
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    cfg = load_config(tmp_path_factory.mktemp("report_home"))
    data = load_named_dataset(DATA, cfg)
    models = ["popularity", "itemitem", "als"]
    result, extras = evaluate_for_report(data, models, cfg, k=10, seeds=[0, 1], ks=(1, 5, 20))
    return cfg, data, models, result, extras


def test_rows_match_evaluate_models(evaluated):
    cfg, data, models, result, _ = evaluated
    plain = evaluate_models(data, models, cfg, k=10, seeds=[0, 1])
    assert len(result.runs) == len(plain.runs) == 6
    for a, b in zip(result.summary(), plain.summary(), strict=True):
        assert a.keys() == b.keys()
        for key in a.keys() - TIMINGS - {"model"}:
            assert a[key] == pytest.approx(b[key], rel=1e-9, abs=1e-12), (a["model"], key)


def test_recall_grows_with_k_and_matches_the_row_at_k(evaluated):
    _, _, models, result, extras = evaluated
    assert extras.ks == [1, 5, 10, 20]
    by_model = {row["model"]: row for row in result.summary()}
    for m in models:
        curve = [np.mean(extras.recall_at[m][kk]) for kk in extras.ks]
        assert all(x <= y + 1e-12 for x, y in zip(curve, curve[1:], strict=False)), (m, curve)
        assert np.mean(extras.recall_at[m][10]) == pytest.approx(by_model[m]["recall@10"])


def test_popularity_bias_by_decile(evaluated):
    _, _, _, _, extras = evaluated
    for shares in [*extras.decile_exposure.values(), extras.train_decile_share]:
        for s in shares:
            assert len(s) == 10 and sum(s) == pytest.approx(1.0)
    pop = np.mean(extras.decile_exposure["popularity"], axis=0)
    als = np.mean(extras.decile_exposure["als"], axis=0)
    assert pop[0] > 0.9  # most-popular recommends (almost) only the top decile
    assert als[0] < pop[0] and als[1:].sum() > pop[1:].sum()
    # deciles are equal-sized and ordered by popularity
    users = np.array([5, 0, 9, 9, 1, 3, 7, 2, 8, 4, 6, 0])
    dec = popularity_deciles(users)
    assert np.bincount(dec, minlength=10).max() - np.bincount(dec, minlength=10).min() <= 1
    assert dec[2] == 0 and dec[11] == 9  # ties: lower index first
    recs = np.array([[2, 3, -1], [2, 1, 0]])
    share = decile_exposure(recs, dec)
    assert share.sum() == pytest.approx(1.0) and share[0] == pytest.approx(3 / 5)


def test_html_is_self_contained(evaluated):
    _, _, models, result, extras = evaluated
    page = render_html(result, extras)
    assert page.count('src="data:image/png;base64,') == 3
    assert not re.search(r'(src|href)="(https?:|//|/)', page) and "<script" not in page
    for m in models:
        assert f"<td>{m}</td>" in page
    assert "recall@20" in page and "D10" in page and "coverage@10" in page and "novelty@10" in page


def test_cli_report_opens_in_a_browser(tmp_path):
    chromium = require_browser()
    out = tmp_path / "report.html"
    exe = Path(sys.executable).parent / "winnow"
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-c", "from winnow.cli import main; main()"]
    proc = subprocess.run([*cmd, "--home", str(tmp_path / "home"), "evaluate", "--dataset", DATA,
                           "--models", "popularity,itemitem", "--k", "10", "--report", str(out)],
                          capture_output=True, text=True, timeout=600,
                          env={**os.environ, "OPENBLAS_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"wrote {out}" in proc.stdout and out.stat().st_size > 10_000
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        page = browser.new_page()
        con = Console(page)
        page.goto(out.as_uri())
        sizes = page.eval_on_selector_all("img", "els => els.map(e => [e.complete, e.naturalWidth])")
        assert len(sizes) == 3 and all(ok and w > 300 for ok, w in sizes), sizes
        assert page.locator("table").count() == 3
        browser.close()
    con.check("report")

"""Real data: bts's click rate estimated from ZOZOTOWN's uniform-random log."""

from __future__ import annotations

import pytest

from winnow.core.errors import DataError
from winnow.evaluation.obd import evaluate_campaign, read_log


def test_obd_men_estimates_cover_logged_bts_ctr(open_bandit):
    res = evaluate_campaign(open_bandit, "men", n_bootstrap=200)
    assert res["n_random"] == 10000 and res["n_bts"] == 10000
    assert res["truth"] == pytest.approx(0.0069)
    for name in ("ips", "snips", "dr"):
        e = res["estimators"][name]
        assert e["truth_in_ci"], (name, e)
        assert e["relative_error"] < 0.5, (name, e)
        assert 0 < e["ess"] < 10000


def test_obd_missing_campaign_is_named(open_bandit):
    with pytest.raises(DataError, match="kids"):
        read_log(open_bandit, "random", "kids")

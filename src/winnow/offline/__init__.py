"""winnow.offline: the service's funnel run offline -- one funnel, not two.

``served.fit_served`` fits what `winnow train` fits (the bundle: retrieval components, the
learned ranker, the index) on given frames in a scratch home, and ``ServedFunnel.recommend``
answers users through the service's own Pipeline in batch mode (winnow.serving.batch).
``winnow batch-recommend`` (``batch_recommend.py``) and the README's offline funnel figure
(bench/funnel.py) both run it, so the two figures are one measurement of the served funnel.
"""

from winnow.offline.served import ServedFunnel, fit_served, scratch_config

__all__ = ["ServedFunnel", "fit_served", "scratch_config"]

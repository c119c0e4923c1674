"""winnow.rollout: launching a challenger bundle against the serving champion.

``control`` starts, promotes, aborts and moves rollouts (records in the store, winnow.data.rollouts);
``assign`` puts users in arms by a sticky hash (the [[experiments]] machinery); ``compare``
measures shadow slates against the champion's (overlap@k, rank-biased overlap); ``sequential``
is the always-valid test (mSPRT); ``arms`` aggregates each arm's requests and outcomes from the
store; ``decide`` turns them into decisions (guardrails, SRM, sequential test, step ends).
The serving side (holding two runtimes, shadow worker, following the state) is
winnow.serving.rollout_follower. docs/ROLLOUT.md.
"""

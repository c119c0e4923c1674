"""Closed-loop simulation of a recommender feeding on its own log (see loop.py)."""

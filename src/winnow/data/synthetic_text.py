"""Readable, deterministic catalog text for the synthetic world (winnow.data.synthetic).

Each category has a small vocabulary (20 built-in English themes; beyond those, pseudo-words
from a generator with a fixed seed, so vocabularies never depend on the world seed). Titles and
texts are drawn mostly from an item's categories' vocabularies, so text carries the category.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

THEMES: tuple[tuple[str, str], ...] = (
    ("cooking", "recipe kitchen spice oven garlic pasta bread sauce"),
    ("travel", "journey island passport mountain beach hostel map voyage"),
    ("music", "guitar melody rhythm album chord drum vocal concert"),
    ("fitness", "workout muscle cardio yoga stretch protein sprint gym"),
    ("technology", "laptop software chip robot cloud code gadget network"),
    ("gardening", "seed soil bloom compost tulip hedge greenhouse herb"),
    ("fashion", "dress denim fabric sneaker jacket runway silk style"),
    ("finance", "budget invest stock savings credit market loan tax"),
    ("gaming", "quest console pixel arcade level boss controller multiplayer"),
    ("science", "atom galaxy experiment molecule physics fossil lab theory"),
    ("history", "empire castle dynasty battle archive medieval ancient ruin"),
    ("parenting", "toddler nursery bedtime school lullaby family playground diaper"),
    ("pets", "puppy kitten leash aquarium parrot grooming treat vet"),
    ("cars", "engine turbo sedan tire garage racing diesel clutch"),
    ("art", "canvas sketch sculpture palette gallery portrait mural ink"),
    ("film", "cinema director screenplay trailer actor premiere scene studio"),
    ("books", "novel chapter author poetry library fiction memoir shelf"),
    ("home", "sofa lamp carpet rug decor curtain pillow furniture"),
    ("sports", "football tennis stadium league goal referee tournament coach"),
    ("beauty", "lipstick serum skincare perfume mascara lotion salon nail"),
)
COMMON = ("the", "best", "guide", "new", "classic", "essential", "complete", "daily", "simple",
          "ultimate", "modern", "little", "great", "everyday", "secret", "first")
ADJECTIVES = ("Bright", "Quiet", "Golden", "Hidden", "Wild", "Gentle", "Bold", "Tiny", "Grand",
              "Silver", "Lucky", "Clever", "Cosy", "Swift", "Honest", "Curious")
SYLLABLES = ("ka", "lo", "mi", "ren", "su", "tor", "vel", "zan", "bri", "dor", "fen", "gil",
             "hal", "jun", "kor", "lum", "mar", "nor", "pel", "qui", "ros", "sil", "tam", "ulm")


def vocabulary(n_categories: int) -> tuple[tuple[str, ...], list[tuple[str, ...]]]:
    """(category names, one word tuple per category); every tuple has the same length (8)."""
    names, words = [], []
    pseudo = np.random.default_rng(20_240_101)
    for c in range(n_categories):
        if c < len(THEMES):
            names.append(THEMES[c][0])
            words.append(tuple(THEMES[c][1].split()))
        else:
            syl = pseudo.integers(0, len(SYLLABLES), size=(9, 3))
            made = ["".join(SYLLABLES[s] for s in row) for row in syl]
            names.append(f"{made[0]}-{c}")
            words.append(tuple(made[1:]))
    return tuple(names), words


def catalog_text(rng: np.random.Generator, vocab: list[tuple[str, ...]], cats: np.ndarray,
                 n_cats: np.ndarray) -> tuple[pa.Array, pa.Array]:
    """Titles and texts (Arrow string arrays) for items with categories ``cats`` int [n, 3] (the
    first ``n_cats[i]`` of row i count). Title = adjective + two primary-category words; text =
    12 words, ~70% from the item's categories' vocabularies, the rest common words. Draws are
    vectorised from ``rng``; strings are joined in Arrow (no Python object per word)."""
    n = len(cats)
    n_words = len(vocab[0])
    # One flat vocabulary: category c's words at [c * n_words, (c + 1) * n_words), then commons.
    words = [w for ws in vocab for w in ws] + list(COMMON)
    flat, capital = pa.array(words), pa.array([w.capitalize() for w in words])
    common0 = len(words) - len(COMMON)
    first = rng.integers(0, n_words, n)
    second = (first + rng.integers(1, max(n_words, 2), n)) % n_words   # two different words
    t_words = cats[:, :1] * n_words + np.stack([first, second], axis=1)
    adj = rng.integers(0, len(ADJECTIVES), n)
    which = np.minimum(rng.integers(0, 3, (n, 12)), (n_cats - 1)[:, None])
    topical = np.take_along_axis(cats, which, 1) * n_words + rng.integers(0, n_words, (n, 12))
    text_idx = np.where(rng.random((n, 12)) < 0.7, topical,
                        common0 + rng.integers(0, len(COMMON), (n, 12)))
    titles = pc.binary_join_element_wise(pa.array(ADJECTIVES).take(pa.array(adj)),
                                         capital.take(pa.array(t_words[:, 0])),
                                         capital.take(pa.array(t_words[:, 1])), " ")
    texts = pc.binary_join_element_wise(*(flat.take(pa.array(text_idx[:, j])) for j in range(12)), " ")
    return titles, texts

"""A typed neighbourhood search among a big county's names (Tehran has hundreds): the time one
search holds the event loop, and what scoring every name with SequenceMatcher (as before the
letter-count filter) costs on the same names.

    .venv/bin/python -m bench.place_search --names 400
"""

from __future__ import annotations

import argparse
import random
import time

from bot.normalize import squash
from bot.services.places import MATCH_THRESHOLD, _may_match, _similarity

LETTERS = "ابپتثجچحخدذرزژسشصضطظعغفقکگلمنوهی"
TYPED = ["یوسف اباد", "ونک", "شهرک غرب", "امیر آبات", "نارمک", "تهرانپارس شرقی"]


def names(count: int) -> list[str]:
    """Made-up names of 6 to 16 letters (a fixed seed), as search keys."""
    chance = random.Random(1405)
    return [
        squash("".join(chance.choice(LETTERS) for _ in range(chance.randint(6, 16))))
        for _ in range(count)
    ]


def per_search_ms(keys: list[str], filtered: bool, rounds: int) -> tuple[float, int]:
    """Milliseconds a search, and how many names matched in all."""
    matched = 0
    started = time.perf_counter()
    for _ in range(rounds):
        for typed in map(squash, TYPED):
            matched += sum(
                _similarity(typed, key) >= MATCH_THRESHOLD
                for key in keys
                if not filtered or _may_match(typed, key)
            )
    return (time.perf_counter() - started) * 1000 / (rounds * len(TYPED)), matched


def main() -> None:
    """Time both ways and check they find the same names."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--names", type=int, default=400)
    parser.add_argument("--rounds", type=int, default=5)
    arguments = parser.parse_args()
    keys = names(arguments.names) + [squash(t) for t in TYPED]  # each typed name exists too
    every_ms, every_found = per_search_ms(keys, filtered=False, rounds=arguments.rounds)
    filtered_ms, filtered_found = per_search_ms(keys, filtered=True, rounds=arguments.rounds)
    assert every_found == filtered_found, (every_found, filtered_found)
    print(
        f"names={len(keys)} every_name_ms={every_ms:.1f} filtered_ms={filtered_ms:.1f} "
        f"matches_per_round={filtered_found // arguments.rounds}"
    )


if __name__ == "__main__":
    main()

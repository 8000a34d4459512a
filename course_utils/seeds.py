"""The course-wide seed offset: one knob that moves every random start, jitter and noise.

Every seeded call in the course (``seed=`` of the loops, the parameterisations' start pictures,
lesson 3's noise, PGD's random starts, the random blur, lesson 4's photo variants) draws its
random numbers from ``effective_seed(seed)``: the seed it was given plus the offset in the
environment variable ``COURSE_SEED`` (0 when unset). So

    COURSE_SEED=1 make test

runs every lesson and test as if each seed had been one more, which is what the stability harness
(``tools/stability.py``) does to check that a claim holds for the lesson's reason and not for one
lucky picture. With ``COURSE_SEED`` unset nothing changes, and the same call always gives the same
numbers: the offset is read from the environment of the process, never set by the course.
"""

from __future__ import annotations

import os

from course_utils.checks import MAX_SEED, check_seed

__all__ = ["SEED_VARIABLE", "seed_offset", "effective_seed"]

SEED_VARIABLE = "COURSE_SEED"
"""The environment variable that holds the course-wide seed offset (a whole number >= 0)."""


def seed_offset() -> int:
    """The course-wide seed offset: ``int($COURSE_SEED)``, or 0 when it is unset or empty.

    Raises:
        ValueError: the variable is set to something other than a whole number in ``0..2**31 - 1``
            (the message quotes it and says how to fix it).
    """
    text = os.environ.get(SEED_VARIABLE, "").strip()
    if not text:
        return 0
    try:
        value = int(text)
    except ValueError:
        value = -1
    if not 0 <= value <= MAX_SEED:
        raise ValueError(
            f"{SEED_VARIABLE}={text!r} is not a seed offset: set it to a whole number such as 0, 1 or 2 "
            f"(or unset it for the course's own seeds)"
        )
    return value


def effective_seed(seed: object, name: str = "seed") -> int:
    """The seed a call really uses: ``seed`` (checked, ``0..2**31 - 1``) plus :func:`seed_offset`,
    wrapped into the same range. With ``COURSE_SEED`` unset it is ``seed`` itself."""
    return (check_seed(seed, name) + seed_offset()) % (MAX_SEED + 1)

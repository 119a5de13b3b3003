"""The study's single seed rule (SPEC §1) and the stable condition key (SPEC §7).

Every random draw in the project goes through :func:`seed_of`. Its fields never include a
run id or a model role, so every model of a replication sees the same windows and the same
null permutations, and a rerun reproduces every number.
"""

from __future__ import annotations

import hashlib

STUDY_SEED = 1337


def seed_of(*fields: object, study_seed: int = STUDY_SEED) -> int:
    """Return the 32-bit seed for a named random draw.

    ``seed_of(*fields) = int(sha256("|".join([str(study_seed), *map(str, fields)])).hexdigest()[:8], 16)``

    Example: ``seed_of("select", "A")`` hashes the string ``"1337|select|A"``.
    """
    joined = "|".join([str(study_seed), *map(str, fields)])
    return int(hashlib.sha256(joined.encode("utf-8")).hexdigest()[:8], 16)


def format_number(value: float) -> str:
    """Canonical text of a rate or gain inside keys: Python's shortest round-trip repr.

    ``1e-05`` stays ``'1e-05'``, ``0.85`` stays ``'0.85'`` and the gain 1 is ``'1.0'``, so the
    same float always yields the same key whatever YAML spelling produced it.
    """
    return repr(float(value))


def condition_key(
    dataset_role: str,
    spike_def_id: str,
    target_rate: float,
    g: float,
    intervention_id: str,
) -> str:
    """Stable text key of a condition, e.g. ``A|SPIKE_ONE_SIDED_POS|1e-05|0.85|MLP_GLOBAL``.

    The model role is deliberately absent: the null permutations and bootstrap indices seeded
    from this key are shared by every model of a replication (paired comparisons).
    """
    return "|".join(
        [
            dataset_role,
            spike_def_id,
            format_number(target_rate),
            format_number(g),
            intervention_id,
        ]
    )

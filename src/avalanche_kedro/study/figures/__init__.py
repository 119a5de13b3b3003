"""Paper figures F01-F11 (SPEC §11), F12 (a training series) and F13-F14 (the logit lens), drawn from saved tables and rasters only.

Every figure function takes what the pipelines saved (the paper tables of
:mod:`avalanche_kedro.study.tables`, per-role tau tables, an event raster set) and returns a
:class:`matplotlib.figure.Figure`; nothing runs a model and nothing touches pyplot's global
state, so the output is byte-identical for the same inputs.

One module per figure family - :mod:`.raster` (F01), :mod:`.rate_matching` (F02),
:mod:`.gain_curves` (F03, F04, F05, F09, F10), :mod:`.generalization` (F06, F07),
:mod:`.robustness` (F08, F11), :mod:`.trajectory` (F12), :mod:`.lens` (F13, F14), and
:mod:`.contact_sheet` (every figure as a thumbnail) - on shared :mod:`.style` (the colour
registry: one meaning per colour; print widths 3.5 / 7.2 in; text ≥ 7 pt; rcParams),
:mod:`.frames` (table access) and :mod:`.metadata` (figure ids and provenance).

Conventions: dimensionless quantities say so in their axis label; colour means one quantity
across all figures (:data:`COLOUR_CATEGORIES`: metric, trained role, untrained role, null model,
reference line); where colour is taken, roles are told apart by line style and marker; a panel
without data is an explicit "not available" panel; shaded bands and error bars are the 95 %
percentile bootstrap intervals stored in the tables.
"""

from __future__ import annotations

from .contact_sheet import THUMBNAIL_DPI, make_contact_sheet, thumbnail
from .gain_curves import (
    f03_branching_vs_gain,
    f04_delta_b_vs_gain,
    f05_gstar_selection,
    f09_susceptibility,
    f10_null_comparison,
)
from .generalization import f06_generalization_b, f07_arc_accuracy
from .lens import f13_lens_depth, f14_collapse_vs_cascade
from .metadata import (
    CONTACT_SHEET,
    FIGURE_TITLES,
    FIGURES,
    METADATA_ATTRIBUTE,
    REAL_MLP_CONDITION,
    REQUIRED_METADATA,
    attach_metadata,
    figure_metadata,
)
from .raster import component_colours, f01_raster
from .rate_matching import f02_rate_matching
from .robustness import f08_spike_def_robustness, f11_ablations
from .style import (
    ABLATION_ORDER,
    B_UNIT,
    CI_NOTE,
    COLOUR_CATEGORIES,
    COMPONENT_PALETTE,
    DOUBLE_COLUMN_IN,
    EMPTY_SITE_RGBA,
    G_LABEL,
    MAX_HEIGHT_IN,
    METRIC_COLOURS,
    MIN_FONT_PT,
    NULL_COLOURS,
    NULL_STYLES,
    RATE_UNIT,
    REFERENCE_COLOUR,
    ROLE_COLOURS,
    ROLE_MARKERS,
    SINGLE_COLUMN_IN,
    STYLE,
    TRAINED_LINESTYLES,
    UNTRAINED_COLOUR,
    figure_size,
    new_figure,
    not_available,
    role_marks,
    role_styles,
)
from .trajectory import f12_training_trajectory

#: Figure id -> function (in SPEC order).
FIGURE_FUNCTIONS = {
    "F01_RASTER": f01_raster,
    "F02_RATE_MATCHING": f02_rate_matching,
    "F03_BRANCHING_VS_GAIN": f03_branching_vs_gain,
    "F04_DELTA_B_VS_GAIN": f04_delta_b_vs_gain,
    "F05_GSTAR_SELECTION": f05_gstar_selection,
    "F06_GENERALIZATION_B": f06_generalization_b,
    "F07_ARC_ACCURACY": f07_arc_accuracy,
    "F08_SPIKE_DEF_ROBUSTNESS": f08_spike_def_robustness,
    "F09_SUSCEPTIBILITY": f09_susceptibility,
    "F10_NULL_COMPARISON": f10_null_comparison,
    "F11_ABLATIONS": f11_ablations,
    "F12_TRAINING_TRAJECTORY": f12_training_trajectory,
    "F13_LENS_DEPTH": f13_lens_depth,
    "F14_COLLAPSE_VS_CASCADE": f14_collapse_vs_cascade,
}

__all__ = [
    "ABLATION_ORDER",
    "B_UNIT",
    "CI_NOTE",
    "COLOUR_CATEGORIES",
    "COMPONENT_PALETTE",
    "CONTACT_SHEET",
    "DOUBLE_COLUMN_IN",
    "EMPTY_SITE_RGBA",
    "FIGURES",
    "FIGURE_FUNCTIONS",
    "FIGURE_TITLES",
    "G_LABEL",
    "MAX_HEIGHT_IN",
    "METADATA_ATTRIBUTE",
    "METRIC_COLOURS",
    "MIN_FONT_PT",
    "NULL_COLOURS",
    "NULL_STYLES",
    "RATE_UNIT",
    "REAL_MLP_CONDITION",
    "REFERENCE_COLOUR",
    "REQUIRED_METADATA",
    "ROLE_COLOURS",
    "ROLE_MARKERS",
    "SINGLE_COLUMN_IN",
    "STYLE",
    "THUMBNAIL_DPI",
    "TRAINED_LINESTYLES",
    "UNTRAINED_COLOUR",
    "attach_metadata",
    "component_colours",
    "make_contact_sheet",
    "f01_raster",
    "f02_rate_matching",
    "f03_branching_vs_gain",
    "f04_delta_b_vs_gain",
    "f05_gstar_selection",
    "f06_generalization_b",
    "f07_arc_accuracy",
    "f08_spike_def_robustness",
    "f09_susceptibility",
    "f10_null_comparison",
    "f11_ablations",
    "f12_training_trajectory",
    "f13_lens_depth",
    "f14_collapse_vs_cascade",
    "figure_metadata",
    "figure_size",
    "new_figure",
    "not_available",
    "role_marks",
    "role_styles",
    "thumbnail",
]

"""Study outputs: replication across model roles, the paper tables and their schemas,
provenance, the figures (:mod:`.figures`, one module per figure family) and the run report
(:mod:`.report`, one module per report section).

May import every lower group (core, analysis, measure, evaluation); Kedro-free.
"""

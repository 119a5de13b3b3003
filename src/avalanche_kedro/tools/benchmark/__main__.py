"""``python -m avalanche_kedro.tools.benchmark <command> --out FILE.json``; the commands are
events, components, scaling, lens, threads and whole-run (``--help`` lists their options)."""

from .cli import main

main()

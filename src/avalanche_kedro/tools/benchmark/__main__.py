"""``python -m avalanche_kedro.tools.benchmark <events|components|scaling> --out FILE.json``."""

from .cli import main

main()

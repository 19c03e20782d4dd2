"""``python -m flowlib.bpd_table``: the old name of ``python -m flowlib.training.bpd_table`` (kept so that the command
recorded in ``data/results/fmnist_bpd_table.json`` still runs)."""
import sys

if __name__ == "__main__":
    from flowlib.training.bpd_table import main

    sys.exit(main())

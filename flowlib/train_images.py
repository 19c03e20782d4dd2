"""``python -m flowlib.train_images``: the old name of ``python -m flowlib.training`` (kept so that runs started
before the move resume with the command they were started with)."""
import sys

if __name__ == "__main__":
    from flowlib.training.images import main

    sys.exit(main())

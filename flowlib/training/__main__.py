"""python -m flowlib.training NAME ...: train (or resume) an image model; see flowlib.training.images."""
import sys

from flowlib.training.images import main

sys.exit(main())

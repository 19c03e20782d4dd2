"""``python -m coursetools {assets,student,slides,site}``: the teaching commands behind ./course."""
from .cli import main

raise SystemExit(main())

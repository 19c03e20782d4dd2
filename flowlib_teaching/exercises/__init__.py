"""Exercise checkers: the public ``framework`` and one module per lesson (``lesson01`` ... ``lesson05``)."""

# moto_server with a settable clock, for keyrotor's tests and demo.
#
# IAM dates everything "now"; a rotation tool needs keys of many ages and
# uses. This wrapper starts the ordinary moto server after replacing moto's
# utcnow() with one that adds an offset (seconds, a float) read from the file
# named by KEYROTOR_MOTO_CLOCK. Seeding code moves the clock back, creates and
# uses keys, and moves it forward again. Nothing else about moto changes.
import datetime
import os
import sys

import moto.core.utils as _utils

_CLOCK = os.environ.get("KEYROTOR_MOTO_CLOCK", "")
_orig = _utils.utcnow


def _offset():
    if not _CLOCK:
        return 0.0
    try:
        with open(_CLOCK) as f:
            return float(f.read().strip() or 0)
    except (OSError, ValueError):
        return 0.0


def utcnow():
    return _orig() + datetime.timedelta(seconds=_offset())


_utils.utcnow = utcnow
for _name, _mod in list(sys.modules.items()):
    if _name.startswith("moto") and getattr(_mod, "utcnow", None) is _orig:
        setattr(_mod, "utcnow", utcnow)

from moto.server import main  # noqa: E402  (after the patch, on purpose)

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""``python -m classify.cli`` (torchrun / accelerate launch use it)."""

import sys

from . import main

sys.exit(main())

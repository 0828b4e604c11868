"""``python -m safepip``."""

import sys

from safepip._cli import main

sys.exit(main())

"""Run the real consensus state machines in a seeded, simulated network.

    python scripts/simulate.py [--validators N] [--byzantine B] [--seeds K] [--seed S]
                               [--heights H] [--faults drop,delay,...]

Seeds 0 .. K-1 run in order (or the one --seed). Exit 0 when no run broke a check, 1 when
one did (naming the seed, the check and the command that replays it), 2 on bad options.
The last line is always ``N passed, M failed``. The code lives in ``node.consensus.simulator``.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from node.consensus.simulator import main

if __name__ == "__main__":
    sys.exit(main())

"""Suite-wide settings, applied before any test module imports torch."""

import os

# Idle OpenMP threads sleep instead of spinning: the suite starts CLI subprocesses that share
# the machine's cores with the test process (see MedSeqFTLib.cli._quiet_openmp).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

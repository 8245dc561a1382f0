"""Make the shared sample messages (sip_samples.py) importable whatever pytest's import mode."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

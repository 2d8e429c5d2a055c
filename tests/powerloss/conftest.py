"""pytest setup for tests/powerloss: makes test_powerloss importable (tests run from any directory)."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import sys

from hwemu.cli import console

sys.exit(console())

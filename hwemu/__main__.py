import sys

from hwemu.cli import main

sys.exit(main())

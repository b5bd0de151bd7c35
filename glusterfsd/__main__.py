import sys

from glusterfsd.cli import main

sys.exit(main())

import sys

from ssl4gie.cli import main

sys.exit(main())

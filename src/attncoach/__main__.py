import sys

from attncoach.cli import main

sys.exit(main())

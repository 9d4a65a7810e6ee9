from attncoach.cli import main
import sys
sys.exit(main())

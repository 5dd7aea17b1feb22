"""`python -m trans3dhead.cli`: the same as the `trans3dhead` command."""
import sys

from trans3dhead.cli import main

sys.exit(main())

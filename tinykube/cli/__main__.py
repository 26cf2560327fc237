"""`python -m tinykube.cli`: the `tinykube` command."""

import sys

from tinykube.cli.main import main

sys.exit(main())

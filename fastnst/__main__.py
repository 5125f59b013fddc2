import sys

from fastnst.cli import main

sys.exit(main())

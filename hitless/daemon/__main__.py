"""``python -m hitless.daemon`` runs hitless-vswitchd."""

import sys

from hitless.daemon.main import main

sys.exit(main())

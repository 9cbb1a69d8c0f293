"""``python -m s2c.cli`` runs the s2c command line."""
import sys

from .main import main

sys.exit(main())

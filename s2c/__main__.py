"""``python -m s2c`` runs the s2c command line."""
import sys

from .cli import main

sys.exit(main())

"""`collectstatic` as the production image runs it, compressing with gzip only.

The production image has no brotli; the development environment gets it with locust (its HTTP client
needs it), and whitenoise would then also brotli-compress every asset, which takes minutes of CPU on a
2-core machine. `make bench` and `make load` serve with DEBUG off and need only the manifest.
"""

import sys

from django.core.management import execute_from_command_line

sys.modules["brotli"] = None  # an import of brotli now fails, so whitenoise uses gzip alone

if __name__ == "__main__":
    execute_from_command_line(["manage.py", "collectstatic", "--noinput", "--verbosity", "0"])

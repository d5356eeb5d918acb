import os

from django.core.wsgi import get_wsgi_application

from pov import gc_tuning

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "pov.settings")
application = get_wsgi_application()
gc_tuning.tune()

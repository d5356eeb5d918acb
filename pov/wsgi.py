import os

from django.core.wsgi import get_wsgi_application

from tenants.checks import refuse_privileged_role

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "pov.settings")
application = get_wsgi_application()
refuse_privileged_role()

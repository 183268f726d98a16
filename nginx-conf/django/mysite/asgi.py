"""ASGI entry point: `asgi_pass mysite.asgi:application;` (django-asgi.conf).
Async views run on the nginx worker's event loop; Django runs the sync ones
on a thread of its own (asgiref's sync_to_async)."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mysite.settings")
application = get_asgi_application()

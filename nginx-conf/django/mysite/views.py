"""Views of the example Django project: pages, JSON, a form, an upload, a
redirect, cookies, a streamed response and a protected download (checked by
t/010-django.t), and an async view (t/028-asgi-frameworks.t serves the
project through asgi_pass)."""

import asyncio
import hashlib
import os
import time

from django.http import (FileResponse, Http404, HttpResponse, HttpResponseRedirect, JsonResponse,
                         StreamingHttpResponse)
from django.urls import reverse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST


@require_GET
def index(request):
    return HttpResponse(
        "<!doctype html><title>Django on nginx</title>"
        "<h1>Django, served by nginx itself</h1>"
        f'<p><a href="{reverse("items")}">JSON</a></p>'
    )


@require_GET
def items(request):
    return JsonResponse({"items": [{"id": 1, "name": "teapot"}],
                         "path": request.path, "script_name": request.META["SCRIPT_NAME"]})


async def _lookup(source):
    await asyncio.sleep(0.05)  # stands in for a database query or an HTTP call
    return {"source": source, "ok": True}


@require_GET
async def overview(request):
    """An async view: both lookups wait at once. Under asgi_pass it runs on
    the worker's event loop, which serves other requests meanwhile; under
    wsgi_pass Django runs it in an event loop of its own for the call."""
    parts = await asyncio.gather(_lookup("stock"), _lookup("orders"))
    return JsonResponse({"parts": parts})


# Form posts from other sites are what CSRF protection is for; these two
# endpoints take API-style posts, so they opt out.
@csrf_exempt
@require_POST
def form(request):
    return HttpResponse(f"hello {request.POST['name']}, you are {int(request.POST['age'])}\n",
                        content_type="text/plain")


@csrf_exempt
@require_POST
def upload(request):
    f = request.FILES["file"]
    digest = hashlib.sha256()
    size = 0
    for chunk in f.chunks():
        digest.update(chunk)
        size += len(chunk)
    return JsonResponse({"filename": f.name, "size": size, "sha256": digest.hexdigest()})


def old(request):
    return HttpResponseRedirect(reverse("index"))


def set_cookie(request):
    response = HttpResponse("cookie set\n", content_type="text/plain")
    response.set_cookie("flavour", "ginger", httponly=True)
    return response


def get_cookie(request):
    return HttpResponse(f"flavour={request.COOKIES.get('flavour', 'none')}\n",
                        content_type="text/plain")


def stream(request):
    def generate():
        for i in range(5):
            yield f"line {i}\n"
            time.sleep(0.05)
    return StreamingHttpResponse(generate(), content_type="text/plain")


@require_GET
def download(request, name):
    """A protected download: the view decides who may have the file, nginx
    sends it from the internal location /protected/ (django.conf), as
    django-sendfile2's nginx backend has it."""
    if request.GET.get("token") != "let-me-in":
        return HttpResponse("not for you\n", status=403, content_type="text/plain")
    response = HttpResponse(content_type="text/plain")
    response["X-Accel-Redirect"] = f"/protected/{name}"
    response["Content-Disposition"] = f'attachment; filename="{name}"'
    return response


PRIVATE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "private")


@require_GET
def send(request, name):
    """The same download as a FileResponse: Django hands the open file to
    wsgi.file_wrapper, and nginx sends it (sendfile, ranges) with no
    Python per block."""
    if request.GET.get("token") != "let-me-in":
        return HttpResponse("not for you\n", status=403, content_type="text/plain")
    path = os.path.join(PRIVATE, os.path.basename(name))
    if not os.path.isfile(path):
        raise Http404(name)
    return FileResponse(open(path, "rb"), as_attachment=True, filename=name)

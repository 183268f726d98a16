"""A Flask app served by nginx through wsgi_pass (nginx-conf/flask.conf).

Pages, JSON, a form, a file upload, a redirect, cookies, a streamed
response and a protected download: the things the test suite
(t/009-flask.t) checks.
"""

import hashlib
import os
import time

from flask import (Flask, Response, jsonify, redirect, request, send_from_directory,
                   stream_with_context, url_for)

app = Flask(__name__)
app.config["MAX_CONTENT_LENGTH"] = 16 * 1024 * 1024


@app.get("/")
def index():
    return (
        "<!doctype html><title>Flask on nginx</title>"
        "<h1>Flask, served by nginx itself</h1>"
        f'<p><a href="{url_for("items")}">JSON</a> · '
        f'<a href="{url_for("stream")}">a streamed response</a></p>'
    )


@app.get("/api/items")
def items():
    return jsonify(items=[{"id": 1, "name": "teapot"}, {"id": 2, "name": "kettle"}],
                   script_root=request.script_root)


@app.post("/form")
def form():
    return f"hello {request.form['name']}, you are {int(request.form['age'])}\n"


@app.post("/upload")
def upload():
    f = request.files["file"]
    data = f.read()
    return jsonify(filename=f.filename, size=len(data),
                   sha256=hashlib.sha256(data).hexdigest())


@app.get("/old")
def old():
    return redirect(url_for("index"))


@app.get("/cookie/set")
def set_cookie():
    resp = Response("cookie set\n", mimetype="text/plain")
    resp.set_cookie("flavour", "oatmeal", httponly=True)
    return resp


@app.get("/cookie/get")
def get_cookie():
    return f"flavour={request.cookies.get('flavour', 'none')}\n"


@app.get("/stream")
def stream():
    @stream_with_context
    def generate():
        for i in range(5):
            yield f"line {i}\n"
            time.sleep(0.05)
    return Response(generate(), mimetype="text/plain")


@app.get("/download/<name>")
def download(name):
    """A protected download: the app decides who may have the file, nginx
    sends it from the internal location /protected/ (flask.conf), without
    the file passing through Python."""
    if request.args.get("token") != "let-me-in":
        return "not for you\n", 403, {"Content-Type": "text/plain"}
    resp = Response(mimetype="text/plain")
    resp.headers["X-Accel-Redirect"] = f"/protected/{name}"
    resp.headers["Content-Disposition"] = f'attachment; filename="{name}"'
    return resp


PRIVATE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "private")


@app.get("/send/<name>")
def send(name):
    """The same download through send_file: Werkzeug hands the open file to
    wsgi.file_wrapper, and nginx sends it (sendfile, ranges) with no Python
    per block."""
    if request.args.get("token") != "let-me-in":
        return "not for you\n", 403, {"Content-Type": "text/plain"}
    return send_from_directory(PRIVATE, name, as_attachment=True)


application = app

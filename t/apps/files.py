"""Apps for the wsgi.file_wrapper tests (t/022, t/023): files handed to
nginx through the wrapper, and what is iterated instead."""

import io
import os
from urllib.parse import parse_qsl

PATTERN = bytes(range(256))


def _file(environ, query):
    """The file ?name= under the document root, made ?size= bytes of the
    0..255 pattern if it is not that already; opened for reading, with a
    close() that says it ran."""
    path = os.path.join(environ["DOCUMENT_ROOT"], query["name"])
    if "size" in query:
        size = int(query["size"])
        if not os.path.exists(path) or os.path.getsize(path) != size:
            data = PATTERN * (size // 256 + 1)
            with open(path + ".tmp", "wb") as out:
                out.write(data[:size])
            os.replace(path + ".tmp", path)
    f = open(path, "rb")
    errors, close = environ["wsgi.errors"], f.close

    def closing():
        errors.write("files: close() called\n")
        close()
    f.close = closing
    return f


def serve(environ, start_response):
    """The file through wsgi.file_wrapper. ?seek=N seeks first, ?read=N
    reads N bytes first (the file's buffer then runs ahead of its
    position); ?length=, ?last_modified=, ?etag=, ?accept_ranges= give
    those fields; ?status= the status."""
    query = dict(parse_qsl(environ.get("QUERY_STRING", "")))
    f = _file(environ, query)
    if "seek" in query:
        f.seek(int(query["seek"]))
    if "read" in query:
        f.read(int(query["read"]))
    headers = [("Content-Type", "application/octet-stream")]
    for key, field in (("length", "Content-Length"), ("last_modified", "Last-Modified"),
                       ("etag", "ETag"), ("accept_ranges", "Accept-Ranges"),
                       ("content_range", "Content-Range")):
        if key in query:
            headers.append((field, query[key]))
    start_response(query.get("status", "200 OK"), headers)
    return environ["wsgi.file_wrapper"](f, int(query.get("block", 8192)))


def in_memory(environ, start_response):
    """An io.BytesIO through the wrapper: iterated in ?block= pieces."""
    query = dict(parse_qsl(environ.get("QUERY_STRING", "")))
    data = io.BytesIO(b"0123456789" * 1000)
    errors, close = environ["wsgi.errors"], data.close

    def closing():
        errors.write("files: close() called\n")
        close()
    data.close = closing
    start_response("200 OK", [("Content-Type", "text/plain")])
    return environ["wsgi.file_wrapper"](data, int(query.get("block", 4096)))


def wrapper_attributes(environ, start_response):
    """What the wrapper says of itself, as wsgiref's has it."""
    w = environ["wsgi.file_wrapper"](io.BytesIO(b"x"), 123)
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"%s %d %s\n" % (type(w).__name__.encode(), w.blksize, type(w.filelike).__name__.encode())]


def written_first(environ, start_response):
    """write() before returning the wrapper: what was written comes first."""
    query = dict(parse_qsl(environ.get("QUERY_STRING", "")))
    f = _file(environ, query)
    write = start_response("200 OK", [("Content-Type", "application/octet-stream")])
    write(b"written first|")
    return environ["wsgi.file_wrapper"](f, 4096)

"""For t/028-asgi-frameworks.t: sends each request below to the FastAPI
example (nginx-conf/fastapi/) twice, in-process through Starlette's own
TestClient and over HTTP to nginx's asgi_pass, and prints one line per
request:

    NAME STATUS same
    NAME STATUS differs: WHAT: in-process ...; nginx ...

    python asgi_side_by_side.py BASE_URL EXAMPLES_DIR

nginx serves the app at / and, with `asgi_param SCRIPT_NAME /shop;`, at
/shop/; the in-process client of a /shop request has root_path /shop.
"""

import sys

import httpx2 as httpx
from starlette.testclient import TestClient

# Headers nginx adds or changes on its own (the connection, the framing);
# every other header of the app's must arrive as the app sent it.
NGINX_OWN = {"server", "date", "connection", "keep-alive", "transfer-encoding"}

BIG_ITEM = {"name": "crate", "price": 9.5, "tags": [f"tag{i:05}" for i in range(20000)]}

# NAME: (method, path, request options)
REQUESTS = {
    "page": ("GET", "/", {}),
    "json": ("GET", "/api/items", {}),
    "item": ("GET", "/api/items/2", {}),
    "query_list": ("GET", "/api/items/1?fields=name&fields=price", {}),
    "item_missing": ("GET", "/api/items/9", {}),
    "path_not_int": ("GET", "/api/items/teapot", {}),
    "path_decoded": ("GET", "/hello/caf%C3%A9%20au%20lait?greeting=g%27day&times=2", {}),
    "query_invalid": ("GET", "/hello/ada?times=9", {}),
    "post_json": ("POST", "/api/items", {"json": {"name": "cup", "price": 3, "tags": ["blue"]}}),
    "post_invalid": ("POST", "/api/items", {"json": {"name": "", "price": -3}}),
    "post_not_json": ("POST", "/api/items", {"content": b"{not json",
                                             "headers": {"content-type": "application/json"}}),
    "post_big": ("POST", "/api/items", {"json": BIG_ITEM}),
    "upload": ("POST", "/upload", {"content": bytes(range(256)) * 8192}),
    "upload_chunked": ("POST", "/upload", {"content": [b"piece"] * 1000}),
    "stream": ("GET", "/stream", {}),
    "file": ("GET", "/report", {}),
    "file_range": ("GET", "/report", {"headers": {"range": "bytes=4-12"}}),
    "file_head": ("HEAD", "/report", {}),
    "not_found": ("GET", "/no/such/page", {}),
    "method_not_allowed": ("DELETE", "/api/items", {}),
    "redirect": ("GET", "/old", {}),
    "redirect_slash": ("GET", "/api/items/", {}),
    "headers": ("GET", "/headers", {"headers": [("x-tag", "one"), ("x-tag", "two")]}),
    "cookie_set": ("GET", "/cookie/set", {}),
    "cookie_get": ("GET", "/cookie/get", {"headers": {"cookie": "flavour=ginger; other=1"}}),
    "mounted": ("GET", "/admin/", {}),
    "mounted_redirect": ("GET", "/admin", {}),
    "openapi": ("GET", "/openapi.json", {}),
    "prefix_page": ("GET", "/shop/", {}),
    "prefix_json": ("GET", "/shop/api/items", {}),
    "prefix_redirect": ("GET", "/shop/old", {}),
    "prefix_post": ("POST", "/shop/api/items", {"json": {"name": "cup", "price": 3}}),
    "prefix_mounted": ("GET", "/shop/admin/", {}),
    "prefix_openapi": ("GET", "/shop/openapi.json", {}),
    "prefix_docs": ("GET", "/shop/docs", {}),
}


def seen(response):
    """What is compared: the status, the app's headers (sorted by name, a
    repeated one in the order sent), the body."""
    headers = [(k, v) for k, v in response.headers.multi_items() if k not in NGINX_OWN]
    return {"status": response.status_code,
            "headers": sorted(headers, key=lambda kv: kv[0]),
            "body": response.content}


def compare(name, in_process, live):
    for what in ("status", "headers", "body"):
        if in_process[what] != live[what]:
            a, b = (repr(x[what])[:300] for x in (in_process, live))
            return f"{name} {live['status']} differs: {what}: in-process {a}; nginx {b}"
    return f"{name} {live['status']} same"


def main(base_url, examples):
    sys.path.insert(0, f"{examples}/fastapi")
    from fastapi_example import app

    # The same client headers both ways: the app sees no difference but the
    # transport.
    options = {"base_url": base_url, "follow_redirects": False,
               "headers": {"user-agent": "side-by-side"}}
    # `with`: lifespan startup runs, as in each nginx worker.
    with TestClient(app, **options) as at_root, \
            TestClient(app, root_path="/shop", **options) as under_shop, \
            httpx.Client(timeout=10, **options) as nginx:
        for name, (method, path, kwargs) in REQUESTS.items():
            in_process = under_shop if path.startswith("/shop/") else at_root
            for client in (in_process, nginx):
                client.cookies.clear()
            try:
                expected = seen(in_process.request(method, path, **kwargs))
                got = seen(nginx.request(method, path, **kwargs))
            except Exception as e:
                print(f"{name} error: {type(e).__name__}: {e}", flush=True)
                continue
            print(compare(name, expected, got), flush=True)


if __name__ == "__main__":
    main(*sys.argv[1:3])

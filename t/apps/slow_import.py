"""An app whose import takes 1 s (t/015-recycling.t, warm start): a worker
that imports its apps when it starts answers its first request at once."""

import os
import sys
import time

time.sleep(1)
IMPORTED_AT = time.time()
sys.stderr.write("slow_import: imported by pid %d\n" % os.getpid())
sys.stderr.flush()


def application(environ, start_response):
    body = ("pid %d imported_at %.3f\n" % (os.getpid(), IMPORTED_AT)).encode()
    start_response("200 OK", [("Content-Type", "text/plain"),
                              ("Content-Length", str(len(body)))])
    return [body]

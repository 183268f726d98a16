# master_process on: workers are forked and start their own Python; a reload
# (HUP) starts new workers that import the app anew, so a fixed app is
# served after `nginx -s reload`.
use Test::Nginx::Socket 'no_plan';
use FindBin;
use lib "$FindBin::Bin/lib";
use WsgiTest;

use_hup();

master_on();
workers(2);
no_shuffle();
run_tests();

__DATA__

=== TEST 1: an app whose module fails to import: 500 and the traceback
--- http_config
wsgi_python_path $TEST_NGINX_SERVER_ROOT/html;
--- config
location /app { wsgi_pass reloaded_app; }
--- user_files
>>> reloaded_app.py
def application(environ, start_response)
    start_response("200 OK", [])
    return [b"never\n"]
--- request
GET /app
--- error_code: 500
--- response_body_like: 500 Internal Server Error
--- error_log
SyntaxError: expected ':'



=== TEST 2: after the file is fixed and nginx reloads, the new workers serve it
--- http_config
wsgi_python_path $TEST_NGINX_SERVER_ROOT/html;
--- config
location /app { wsgi_pass reloaded_app; }
location /pid { wsgi_pass reloaded_app:pid; }
--- user_files
>>> reloaded_app.py
import os

def application(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"fixed\n"]

def pid(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [str(os.getpid()).encode()]
--- request
GET /app
--- error_code: 200
--- response_body
fixed
--- no_error_log
[error]

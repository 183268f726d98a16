# `nginx -t` (and start-up) reject malformed wsgi_* directives with a message
# that names the directive.
use Test::Nginx::Socket 'no_plan';
# No WsgiTest: each block is exactly the configuration nginx must reject.

master_on();

no_shuffle();
run_tests();

__DATA__

=== TEST 1: an empty callable
--- config
location / { wsgi_pass app:; }
--- must_die
--- error_log
invalid value "app:" in "wsgi_pass" directive, it must be MODULE[:CALLABLE], with a callable after ":"



=== TEST 2: more than one colon
--- config
location / { wsgi_pass a:b:c; }
--- must_die
--- error_log
invalid value "a:b:c" in "wsgi_pass" directive, it must be MODULE[:CALLABLE], with one ":" at most



=== TEST 3: a module name that is not a Python name
--- config
location / { wsgi_pass my-app; }
--- must_die
--- error_log
invalid value "my-app" in "wsgi_pass" directive, it must be a dotted Python module name or a path to a .py file



=== TEST 4: an app file that does not exist
--- config
location / { wsgi_pass /nonexistent/app.py; }
--- must_die
--- error_log
invalid value "/nonexistent/app.py" in "wsgi_pass" directive, file "/nonexistent/app.py" does not exist



=== TEST 5: a python home that does not exist
--- http_config
wsgi_python_home /nonexistent/venv;
--- config
location / { wsgi_pass app; }
--- must_die
--- error_log
invalid value "/nonexistent/venv" in "wsgi_python_home" directive, directory "/nonexistent/venv" does not exist



=== TEST 6: a python home that is neither a virtualenv nor a Python prefix
--- http_config
wsgi_python_home /proc/self;
--- config
location / { wsgi_pass app; }
--- must_die
--- error_log
invalid value "/proc/self" in "wsgi_python_home" directive, "/proc/self" is neither a virtualenv (no pyvenv.cfg) nor a Python prefix (no lib/)



=== TEST 7: a python path entry that does not exist
--- http_config
wsgi_python_path /nonexistent/dir;
--- config
location / { wsgi_pass app; }
--- must_die
--- error_log
invalid value "/nonexistent/dir" in "wsgi_python_path" directive, directory "/nonexistent/dir" does not exist



=== TEST 8: wsgi_pass twice in one location
--- config
location / {
    wsgi_pass a;
    wsgi_pass b;
}
--- must_die
--- error_log
"wsgi_pass" directive is duplicate



=== TEST 9: wsgi_python_path is an http-level directive
--- config
location / {
    wsgi_python_path /tmp;
    wsgi_pass app;
}
--- must_die
--- error_log
"wsgi_python_path" directive is not allowed here



=== TEST 10: wsgi_threads takes a number of threads
--- config
location / { wsgi_threads many; wsgi_pass app; }
--- must_die
--- error_log
invalid value "many" in "wsgi_threads" directive, it must be a number of threads from 0 to 4096



=== TEST 11: wsgi_threads: an unknown parameter
--- config
location / { wsgi_threads 8 queue=3; wsgi_pass app; }
--- must_die
--- error_log
invalid parameter "queue=3" in "wsgi_threads" directive, it must be "max_queue=NUMBER"



=== TEST 12: wsgi_threads: max_queue without threads
--- config
location / { wsgi_threads 0 max_queue=3; wsgi_pass app; }
--- must_die
--- error_log
invalid parameter "max_queue=3" in "wsgi_threads" directive, it needs a number of threads above 0



=== TEST 13: wsgi_threads twice at one level
--- config
location / { wsgi_threads 2; wsgi_threads 4; wsgi_pass app; }
--- must_die
--- error_log
"wsgi_threads" directive is duplicate



=== TEST 14: wsgi_queue_timeout takes a time
--- config
location / { wsgi_queue_timeout soon; wsgi_pass app; }
--- must_die
--- error_log
"wsgi_queue_timeout" directive invalid value



=== TEST 15: a python home that exists but holds no Python: the worker logs it and answers 500, it is not respawned
--- main_config
--- http_config
wsgi_python_home $TEST_NGINX_SERVER_ROOT/html/fake-python;
--- config
location /app { wsgi_pass app; }
--- user_files
>>> fake-python/lib/README
A directory that looks like a Python prefix but has no standard library.
--- request eval
["GET /app", "GET /app"]
--- error_code eval
[500, 500]
--- error_log
wsgi: Python is not running in this worker: init_fs_encoding: failed to get the Python codec of the filesystem encoding
--- no_error_log
exited on signal
exited with code



=== TEST 16: wsgi_max_requests takes a number of requests
--- http_config
wsgi_max_requests x;
--- config
location /app { wsgi_pass app; }
--- must_die
--- error_log
invalid value "x" in "wsgi_max_requests" directive, it must be a number of requests above 0



=== TEST 17: wsgi_max_requests: jitter without a number of requests
--- http_config
wsgi_max_requests jitter=10;
--- config
location /app { wsgi_pass app; }
--- must_die
--- error_log
invalid value "jitter=10" in "wsgi_max_requests" directive, it must be a number of requests above 0



=== TEST 18: wsgi_max_requests: an unknown parameter
--- http_config
wsgi_max_requests 50 spread=3;
--- config
location /app { wsgi_pass app; }
--- must_die
--- error_log
invalid parameter "spread=3" in "wsgi_max_requests" directive, it must be "jitter=NUMBER"



=== TEST 19: wsgi_max_requests: a negative jitter
--- http_config
wsgi_max_requests 50 jitter=-1;
--- config
location /app { wsgi_pass app; }
--- must_die
--- error_log
invalid value "jitter=-1" in "wsgi_max_requests" directive, it must be "jitter=NUMBER"



=== TEST 20: wsgi_max_requests is an http-level directive
--- config
location /app {
    wsgi_max_requests 50;
    wsgi_pass app;
}
--- must_die
--- error_log
"wsgi_max_requests" directive is not allowed here



=== TEST 21: wsgi_max_rss takes a size: not a negative one
--- http_config
wsgi_max_rss -1m;
--- config
location /app { wsgi_pass app; }
--- must_die
--- error_log
invalid value "-1m" in "wsgi_max_rss" directive, it must be a size above 0, such as 512m or 2g



=== TEST 22: wsgi_max_rss twice
--- http_config
wsgi_max_rss 512m;
wsgi_max_rss 1g;
--- config
location /app { wsgi_pass app; }
--- must_die
--- error_log
"wsgi_max_rss" directive is duplicate



=== TEST 23: wsgi_read_timeout takes a time: not a negative one
--- config
location /app { wsgi_read_timeout -1s; wsgi_pass app; }
--- must_die
--- error_log
invalid value "-1s" in "wsgi_read_timeout" directive, it must be a time above 0, such as 30s or 2m



=== TEST 24: wsgi_request_buffering off needs a thread pool: refused where the app runs inline
--- config
wsgi_request_buffering off;
location /inline { wsgi_pass app; }
--- must_die
--- error_log eval
qr/"wsgi_request_buffering off" needs "wsgi_threads": the "wsgi_pass" at \S+nginx\.conf:\d+ runs its app on the event loop/



=== TEST 25: wsgi_request_buffering off: refused in a location that turns the inherited pool off
--- http_config
wsgi_threads 2;
wsgi_request_buffering off;
--- config
location /threads { wsgi_pass app; }
location /inline { wsgi_threads 0; wsgi_pass app; }
--- must_die
--- error_log eval
qr/"wsgi_request_buffering off" needs "wsgi_threads": the "wsgi_pass" at \S+nginx\.conf:\d+ runs its app/



=== TEST 26: wsgi_request_buffering takes on or off
--- config
location /app { wsgi_request_buffering maybe; wsgi_threads 2; wsgi_pass app; }
--- must_die
--- error_log
invalid value "maybe" in "wsgi_request_buffering" directive, it must be "on" or "off"



=== TEST 27: wsgi_max_temp_file_size takes a size or 0
--- config
location /app { wsgi_threads 2; wsgi_max_temp_file_size -1; wsgi_pass app; }
--- must_die
--- error_log
invalid value "-1" in "wsgi_max_temp_file_size" directive, it must be a size, such as 1024m, or 0



=== TEST 28: wsgi_temp_path: a level of 0 digits
--- config
location /app { wsgi_threads 2; wsgi_temp_path /tmp/wsgi_temp 0; wsgi_pass app; }
--- must_die
--- error_log
"wsgi_temp_path" directive invalid value



=== TEST 29: wsgi_temp_path: a path that cannot be created
--- config
location /app { wsgi_threads 2; wsgi_temp_path /dev/null/wsgi_temp; wsgi_pass app; }
--- must_die
--- error_log
mkdir() "/dev/null/wsgi_temp" failed (20: Not a directory)



=== TEST 30: wsgi_ignore_headers takes the X-Accel fields only: the others matter to a cache, which the module has not
--- config
location /app { wsgi_ignore_headers X-Accel-Redirect Set-Cookie; wsgi_pass app; }
--- must_die
--- error_log
invalid value "Set-Cookie" in "wsgi_ignore_headers" directive, it must be one of X-Accel-Redirect, X-Accel-Expires, X-Accel-Limit-Rate, X-Accel-Buffering, X-Accel-Charset (the other fields uwsgi_ignore_headers takes only matter to a cache, which ngx_wsgi does not have)



=== TEST 31: wsgi_ignore_headers twice at one level
--- config
location /app { wsgi_ignore_headers X-Accel-Redirect; wsgi_ignore_headers X-Accel-Charset; wsgi_pass app; }
--- must_die
--- error_log
"wsgi_ignore_headers" directive is duplicate



=== TEST 32: wsgi_status belongs in a location
--- config
wsgi_status;
--- must_die
--- error_log
"wsgi_status" directive is not allowed here



=== TEST 33: wsgi_status takes no arguments
--- config
location /status { wsgi_status json; }
--- must_die
--- error_log
invalid number of arguments in "wsgi_status" directive



=== TEST 34: asgi_pass checks its argument as wsgi_pass does
--- config
location /app { asgi_pass app:; }
--- must_die
--- error_log
invalid value "app:" in "asgi_pass" directive, it must be MODULE[:CALLABLE], with a callable after ":"



=== TEST 35: wsgi_pass and asgi_pass in one location
--- config
location /app { wsgi_pass app; asgi_pass app; }
--- must_die
--- error_log
"asgi_pass" directive is duplicate



=== TEST 36: wsgi_threads does not apply to asgi_pass (an ASGI app runs on the asyncio loop)
--- config
location /app { wsgi_threads 4; asgi_pass app; }
--- must_die
--- error_log eval
qr/"wsgi_threads" does not apply to "asgi_pass" \(at .*nginx\.conf:\d+\): an ASGI app runs on the worker's asyncio loop; use "wsgi_threads 0" or none in its location/



=== TEST 37: ... inherited from the server level either
--- config
wsgi_threads 4;
location /app { asgi_pass app; }
--- must_die
--- error_log eval
qr/"wsgi_threads" does not apply to "asgi_pass"/



=== TEST 38: asgi_websocket_ping_interval takes a time or off
--- config
location /app { asgi_websocket_ping_interval 0; asgi_pass app; }
--- must_die
--- error_log
invalid value "0" in "asgi_websocket_ping_interval" directive, it must be a time above 0, such as 20s or 1m, or off



=== TEST 39: asgi_websocket_ping_interval twice at one level
--- config
location /app { asgi_websocket_ping_interval 5s; asgi_websocket_ping_interval off; asgi_pass app; }
--- must_die
--- error_log
"asgi_websocket_ping_interval" directive is duplicate

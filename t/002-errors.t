# App errors: 500 before the header, aborted response after it; the
# traceback in error_log; close() still called; the worker keeps serving.
use Test::Nginx::Socket 'no_plan';
use FindBin;
use lib "$FindBin::Bin/lib";
use WsgiTest;

no_shuffle();
run_tests();

__DATA__

=== TEST 1: an app that raises gives 500, and the worker keeps serving
--- config
location /raises { wsgi_pass failing:raises; }
location /ok { wsgi_pass failing:ok; }
--- request eval
["GET /raises", "GET /ok", "GET /raises", "GET /ok"]
--- error_code eval
[500, 200, 500, 200]
--- response_body_like eval
[qr/500 Internal Server Error/, qr/^still serving$/, qr/500 Internal Server Error/, qr/^still serving$/]



=== TEST 1b: the traceback goes to error_log with the request's context
--- config
location /raises { wsgi_pass failing:raises; }
--- request
GET /raises
--- error_code: 500
--- error_log eval
[qr/\[error\] .*wsgi: app "failing:raises" raised:$/,
 "Traceback (most recent call last):",
 qr/failing\.py", line \d+, in raises$/,
 qr/^ValueError: the app broke on purpose, client: 127\.0\.0\.1, server: localhost, request: "GET \/raises HTTP\/1\.1"/]



=== TEST 2: an error after the header aborts the response: no last chunk
--- config
location /mid { wsgi_pass failing:raises_mid_stream; }
--- request
GET /mid
--- ignore_response
--- error_log
wsgi: the app's response iterable raised after the response header was sent; aborting the response:
RuntimeError: broke after the header was sent



=== TEST 3: the aborted chunked response has no last chunk: a proxy sees it cut short
--- config
location /mid { wsgi_pass failing:raises_mid_stream; }
location /via-proxy {
    proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/mid;
    proxy_http_version 1.1;
}
--- request
GET /via-proxy HTTP/1.0
--- response_body
first part
--- error_log
upstream prematurely closed connection while reading upstream



=== TEST 4: iteration fails before any chunk: 500, and close() is still called
--- config
location /iter { wsgi_pass failing:raises_in_iteration_with_close; }
--- request
GET /iter
--- error_code: 500
--- error_log
KeyError: 'iteration failed'
failing app: close() called



=== TEST 5: a malformed status is an app error
--- config
location /status { wsgi_pass failing:bad_status; }
--- request
GET /status
--- error_code: 500
--- response_body_unlike: never sent
--- error_log
ValueError: status "200" is not of the form 'NNN reason' (e.g. '200 OK')



=== TEST 6: a header value with CR/LF never reaches the client
--- config
location /crlf { wsgi_pass failing:crlf_header; }
--- request
GET /crlf
--- error_code: 500
--- response_headers
!X-Injected
!Set-Cookie
--- error_log
response header "X-Injected" has a control character ('\r') at position 1 of its value



=== TEST 7: a str chunk is an app error that says what was wrong
--- config
location /str { wsgi_pass failing:str_chunk; }
--- request
GET /str
--- error_code: 500
--- error_log
TypeError: the response iterable yielded str, not bytes



=== TEST 8: returning None is an app error
--- config
location /none { wsgi_pass failing:returns_none; }
--- request
GET /none
--- error_code: 500
--- error_log
TypeError: the app returned NoneType, which is not an iterable of bytes



=== TEST 9: a body without start_response is an app error
--- config
location /nostart { wsgi_pass failing:no_start_response; }
--- request
GET /nostart
--- error_code: 500
--- error_log
the app did not call start_response() before its body



=== TEST 10: SystemExit in the app does not end the worker
--- config
location /exit { wsgi_pass failing:system_exit; }
location /ok { wsgi_pass failing:ok; }
--- request eval
["GET /exit", "GET /ok"]
--- error_code eval
[500, 200]



=== TEST 10b: SystemExit is logged like any exception
--- config
location /exit { wsgi_pass failing:system_exit; }
--- request
GET /exit
--- error_code: 500
--- error_log eval
qr/^SystemExit: 3, client/



=== TEST 11: start_response called twice without exc_info
--- config
location /twice { wsgi_pass failing:second_start_response; }
--- request
GET /twice
--- error_code: 500
--- error_log
start_response() called a second time without exc_info



=== TEST 12: start_response with exc_info before the header replaces the status
--- config
location /replace { wsgi_pass failing:exc_info_replaces; }
--- request
GET /replace
--- error_code: 503
--- response_body
replaced



=== TEST 13: a module that fails to import: 500 and the traceback at each request, retried each time (the worker's start tried it too: t/015)
--- config
location /broken { wsgi_pass broken_import; }
--- request eval
["GET /broken", "GET /broken"]
--- error_code eval
[500, 500]
--- grep_error_log eval
qr/wsgi: cannot load app "broken_import:application":/
--- grep_error_log_out eval
["wsgi: cannot load app \"broken_import:application\":\n",
 "wsgi: cannot load app \"broken_import:application\":\n"]



=== TEST 13b: the import error's traceback
--- config
location /broken { wsgi_pass broken_import; }
--- request
GET /broken
--- error_code: 500
--- error_log eval
[qr/broken_import\.py", line 3, in <module>$/,
 qr/^ModuleNotFoundError: No module named 'this_module_does_not_exist', client/]



=== TEST 14: a callable that does not exist
--- config
location /missing { wsgi_pass failing:no_such_app; }
--- request
GET /missing
--- error_code: 500
--- error_log
AttributeError: module 'failing' has no attribute 'no_such_app'



=== TEST 15.1: start_response with the wrong shapes (dict): 500 and a message that says so
--- config
location /shape { wsgi_pass failing:bad_shapes; }
--- request
GET /shape?dict
--- error_code: 500
--- response_body_unlike: never sent
--- error_log
TypeError: response headers must be a list of (name, value) tuples, not dict



=== TEST 15.2: start_response with the wrong shapes (triple): 500 and a message that says so
--- config
location /shape { wsgi_pass failing:bad_shapes; }
--- request
GET /shape?triple
--- error_code: 500
--- response_body_unlike: never sent
--- error_log
TypeError: response header ('A', 'b', 'c') is not a (name, value) tuple



=== TEST 15.3: start_response with the wrong shapes (bytes-value): 500 and a message that says so
--- config
location /shape { wsgi_pass failing:bad_shapes; }
--- request
GET /shape?bytes-value
--- error_code: 500
--- response_body_unlike: never sent
--- error_log
TypeError: response header value must be a str, not bytes (b'raw')



=== TEST 15.4: start_response with the wrong shapes (bytes-status): 500 and a message that says so
--- config
location /shape { wsgi_pass failing:bad_shapes; }
--- request
GET /shape?bytes-status
--- error_code: 500
--- response_body_unlike: never sent
--- error_log
TypeError: status must be a str such as '200 OK', not bytes



=== TEST 15.5: start_response with the wrong shapes (wide): 500 and a message that says so
--- config
location /shape { wsgi_pass failing:bad_shapes; }
--- request
GET /shape?wide
--- error_code: 500
--- response_body_unlike: never sent
--- error_log
ValueError: response header "X-Wide" has a character outside latin-1 ('☺') at position 0 of its value



=== TEST 15.6: start_response with the wrong shapes (bad-length): 500 and a message that says so
--- config
location /shape { wsgi_pass failing:bad_shapes; }
--- request
GET /shape?bad-length
--- error_code: 500
--- response_body_unlike: never sent
--- error_log
ValueError: response header Content-Length has a value that is not a number: "ten"



=== TEST 15.7: start_response with the wrong shapes (write-str): 500 and a message that says so
--- config
location /shape { wsgi_pass failing:bad_shapes; }
--- request
GET /shape?write-str
--- error_code: 500
--- response_body_unlike: never sent
--- error_log
TypeError: write() takes bytes, not str



=== TEST 15.8: start_response with the wrong shapes (hop-by-hop): 500 and a message that says so
--- config
location /shape { wsgi_pass failing:bad_shapes; }
--- request
GET /shape?hop-by-hop
--- error_code: 500
--- response_body_unlike: never sent
--- error_log
ValueError: response header "Connection" is hop-by-hop; a WSGI app must not send it (PEP 3333)



=== TEST 15.9: start_response with the wrong shapes (bad-name): 500 and a message that says so
--- config
location /shape { wsgi_pass failing:bad_shapes; }
--- request
GET /shape?bad-name
--- error_code: 500
--- response_body_unlike: never sent
--- error_log
ValueError: response header name "Bad Name" is not a valid HTTP token



=== TEST 15.10: start_response with the wrong shapes (wide-status): 500 and a message that says so
--- config
location /shape { wsgi_pass failing:bad_shapes; }
--- request
GET /shape?wide-status
--- error_code: 500
--- response_body_unlike: never sent
--- error_log
ValueError: status "200 ☺" is not of the form 'NNN reason' (e.g. '200 OK')



=== TEST 16: after all of those, the worker still serves
--- config
location /shape { wsgi_pass failing:bad_shapes; }
location /ok { wsgi_pass failing:ok; }
--- request eval
["GET /shape?dict", "GET /shape?triple", "GET /shape?bytes-value", "GET /shape?bytes-status",
 "GET /shape?wide", "GET /shape?bad-length", "GET /shape?write-str", "GET /shape?hop-by-hop",
 "GET /shape?bad-name", "GET /shape?wide-status", "GET /ok"]
--- error_code eval
[500, 500, 500, 500, 500, 500, 500, 500, 500, 500, 200]

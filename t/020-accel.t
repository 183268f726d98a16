# X-Accel-* response fields, acted on as nginx acts on them from an
# upstream: X-Accel-Redirect (a URI, with arguments, a named location, an
# app of its own; missing and unsafe targets), X-Accel-Charset, the fields
# never reaching the client, wsgi_ignore_headers, and values the app got
# wrong. (X-Accel-Limit-Rate's timing: t/021; X-Accel-Buffering: t/011.)
use Test::Nginx::Socket 'no_plan';
use FindBin;
use lib "$FindBin::Bin/lib";
use WsgiTest;

no_shuffle();
run_tests();

__DATA__

=== TEST 1: X-Accel-Redirect to an internal location serves the file, with the fields a redirect keeps
--- config
location /app { wsgi_pass accel:redirect; }
location /protected/ { internal; root html; }
--- user_files
>>> protected/report.txt
the protected file
--- request
GET /app?to=/protected/report.txt
--- response_body
the protected file
--- response_headers
Content-Type: text/x-from-app
Content-Disposition: attachment; filename="report.txt"
Set-Cookie: seen=1; Path=/
Cache-Control: private
Content-Length: 19
!X-From-App
!X-Accel-Redirect
!X-Accel-Expires
--- error_log
redirect: close() called
--- no_error_log
[alert]



=== TEST 2: to a URI with arguments: they go along, and a POST becomes a GET
--- config
location /app { wsgi_pass accel:redirect; }
location /inner { internal; return 200 "$request_method $uri args=$args\n"; }
--- request
POST /app?to=/inner%3Fa%3D1%26b%3D2
hello
--- response_body
GET /inner args=a=1&b=2
--- no_error_log
[alert]



=== TEST 3: a HEAD stays a HEAD, answered with the file's length
--- config
location /app { wsgi_pass accel:redirect; }
location /protected/ { internal; root html; }
--- user_files
>>> protected/report.txt
the protected file
--- request
HEAD /app?to=/protected/report.txt
--- response_body
--- response_headers
Content-Length: 19



=== TEST 4: to a named location: the request keeps its method and URI
--- config
location /app { wsgi_pass accel:redirect; }
location @files { return 200 "named: $request_method $uri\n"; }
--- request
GET /app?to=@files
--- response_body
named: GET /app
--- error_log
redirect: close() called



=== TEST 5: to a location whose app runs in turn
--- config
location /app { wsgi_pass accel:redirect; }
location /second { internal; wsgi_pass accel:second; }
--- request
POST /app?to=/second/x
data
--- response_body
second app: GET /second/x
--- error_log
redirect: close() called
second: close() called



=== TEST 6: a missing named location: 500, as nginx answers for an upstream
--- config
location /app { wsgi_pass accel:redirect; }
--- request
GET /app?to=@nowhere
--- error_code: 500
--- error_log
could not find named location "@nowhere"
redirect: close() called



=== TEST 7: a missing file: 404, logged by the static module
--- config
location /app { wsgi_pass accel:redirect; }
location /protected/ { internal; root html; }
--- request
GET /app?to=/protected/missing.txt
--- error_code: 404
--- error_log
/protected/missing.txt" failed (2: No such file or directory)



=== TEST 8: an unsafe URI is refused: 404
--- config
location /app { wsgi_pass accel:redirect; }
location /protected/ { internal; root html; }
--- request
GET /app?to=/protected/../secret
--- error_code: 404
--- error_log
unsafe URI "/protected/../secret" was detected
redirect: close() called



=== TEST 9: a value that is neither a URI nor a named location is the app's error: 500
--- config
location /app { wsgi_pass accel:redirect; }
--- request
GET /app?to=protected/report.txt
--- error_code: 500
--- error_log eval
qr/ValueError: response header X-Accel-Redirect has a value that is neither a URI \(\/path\) nor a named location \(\@name\): "protected\/report.txt"/



=== TEST 10: wsgi_ignore_headers X-Accel-Redirect: the app's own response goes out, without the field
--- config
location /app { wsgi_ignore_headers X-Accel-Redirect; wsgi_pass accel:redirect; }
--- request
GET /app?to=/protected/report.txt
--- response_body
the app's own body, which must not be sent
--- response_headers
!X-Accel-Redirect
X-From-App: not kept by a redirect



=== TEST 11: wsgi_ignore_headers is inherited, and a level that has it replaces it
--- http_config
wsgi_python_path $TEST_NGINX_APPS;
wsgi_ignore_headers X-Accel-Redirect;
--- config
location /app { wsgi_pass accel:redirect; }
location /app2 { wsgi_ignore_headers X-Accel-Charset; wsgi_pass accel:redirect; }
location /inner { internal; return 200 "redirected\n"; }
--- request eval
["GET /app?to=/inner", "GET /app2?to=/inner"]
--- response_body eval
["the app's own body, which must not be sent\n", "redirected\n"]



=== TEST 12: X-Accel-Charset names the charset nginx's charset filter declares
--- config
location /known { charset utf-8; return 204; }
location /app { wsgi_pass accel:fields; }
--- request
GET /app?name=X-Accel-Charset&value=utf-8
--- response_headers
Content-Type: text/plain; charset=utf-8
!X-Accel-Charset
--- response_body
the app's body



=== TEST 13: X-Accel-Expires (for a cache) and X-Accel-Buffering do not reach the client either
--- config
location /app { wsgi_pass accel:fields; }
--- request eval
["GET /app?name=X-Accel-Expires&value=60", "GET /app?name=X-Accel-Buffering&value=no"]
--- response_headers eval
["!X-Accel-Expires", "!X-Accel-Buffering"]
--- response_body eval
["the app's body\n", "the app's body\n"]



=== TEST 14: an X-Accel-Limit-Rate that is not a rate is the app's error: 500
--- config
location /app { wsgi_pass accel:fields; }
--- request
GET /app?name=X-Accel-Limit-Rate&value=10k
--- error_code: 500
--- error_log
ValueError: response header X-Accel-Limit-Rate has a value that is not a number of bytes per second or off: "10k"



=== TEST 15: an X-Accel field of the app's own (not one nginx knows) goes to the client
--- config
location /app { wsgi_pass accel:fields; }
--- request
GET /app?name=X-Accel-Mine&value=1
--- response_headers
X-Accel-Mine: 1



=== TEST 16: a redirect while the body still streams to the app (wsgi_request_buffering off): nginx serves the redirect, the rest of the body is left unread
--- config
location /app { wsgi_threads 2; wsgi_request_buffering off; client_max_body_size 100m; wsgi_pass accel:redirect; }
location /inner { internal; return 200 "inner $request_method\n"; }
--- request eval
"POST /app?to=/inner\r\n" . ("x" x 5000000)
--- response_body
inner GET
--- error_log
redirect: close() called
--- no_error_log
[alert]

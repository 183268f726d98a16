# ASGI over HTTP (asgi_pass, issue 20): the scope, the request body through
# receive(), responses through send() (whole, streamed, empty, 204, HEAD,
# pathsend, X-Accel-Redirect, gzip, HTTP/2), the lifespan state,
# and every bad message: 500 before the head, a cut response after it, a
# line naming the fault in error_log, and the worker serving on.
use Test::Nginx::Socket 'no_plan';
use FindBin;
use lib "$FindBin::Bin/lib";
use WsgiTest;
use Compress::Raw::Zlib;

sub gunzip {
    my ($in) = @_;
    my ($inflate) = Compress::Raw::Zlib::Inflate->new(-WindowBits => WANT_GZIP);
    my $out = '';
    $inflate->inflate($in, $out);
    return $out;
}

# EAGAIN mode (make test-eagain) sends a byte per write.
our $BigSize = $ENV{TEST_NGINX_LD_PRELOAD} ? 20000 : 10000000;

no_shuffle();
run_tests();

__DATA__

=== TEST 1: hello
--- config
location /a/ { asgi_pass asgi_basics:app; }
--- request
GET /a/hello
--- response_headers
Content-Type: text/plain
Content-Length: 16
--- response_body
hello from asgi
--- no_error_log
[error]



=== TEST 2: the scope of a request
--- config
location /a/ { asgi_pass asgi_basics:app; }
--- request
GET /a/scope?a=1&b=%20x HTTP/1.1
--- more_headers
X-Custom: One
X-Custom: Two
--- response_body_like eval
qr/\A\{"asgi": \{"spec_version": "2\.4", "version": "3\.0"\}, "client": \["127\.0\.0\.1", \d+\], "headers": \[\["host", "localhost"\], \["connection", "close"\], \["x-custom", "One"\], \["x-custom", "Two"\]\], "http_version": "1\.1", "method": "GET", "params": \{\}, "path": "\/a\/scope", "query_string": "a=1&b=%20x", "raw_path": "\/a\/scope", "root_path": "", "scheme": "http", "server": \["127\.0\.0\.1", $ENV{TEST_NGINX_SERVER_PORT}\], "state": \{"started": "yes"\}, "type": "http"\}\z/



=== TEST 3: path is decoded, raw_path is as sent; HTTP/1.0
--- config
location /a/ { asgi_pass asgi_basics:app; }
--- request
GET /a/dir%20name/../scope HTTP/1.0
--- response_body_like eval
qr/"http_version": "1\.0", .*"path": "\/a\/scope", .*"raw_path": "\/a\/dir%20name\/\.\.\/scope"/



=== TEST 4: asgi_param: SCRIPT_NAME is root_path (path keeps it), HTTPS makes the scheme, all are in extensions["nginx.params"]
--- config
location /mounted/ {
    asgi_param SCRIPT_NAME /mounted/;
    asgi_param HTTPS on;
    asgi_param TENANT $arg_t;
    asgi_param EMPTY "" if_not_empty;
    asgi_pass asgi_basics:app;
}
--- request
GET /mounted/scope?t=acme
--- response_body_like eval
qr/"params": \{"HTTPS": "on", "SCRIPT_NAME": "\/mounted\/", "TENANT": "acme"\}, "path": "\/mounted\/scope", .*"root_path": "\/mounted", "scheme": "https"/



=== TEST 5: the request body through receive(): in memory, and from nginx's temp file in pieces
--- config
client_body_buffer_size 16k;
location /a/ { asgi_pass asgi_basics:app; }
--- request eval
["POST /a/echo\n" . ("a" x 1000), "POST /a/echo\n" . ("0123456789" x 50000)]
--- response_body eval
["1000 bytes: " . ("a" x 32), "500000 bytes: 01234567890123456789012345678901"]



=== TEST 6: a streamed response: chunked, each body message flushed
--- config
location /a/ { asgi_pass asgi_basics:app; }
--- request
GET /a/stream
--- response_headers
Transfer-Encoding: chunked
--- response_body
chunk 0
chunk 1
chunk 2
chunk 3
chunk 4



=== TEST 7: a stream through gzip
--- config
location /a/ { gzip on; gzip_min_length 1; gzip_types text/plain; asgi_pass asgi_basics:app; }
--- more_headers
Accept-Encoding: gzip
--- request
GET /a/stream
--- response_headers
Content-Encoding: gzip
--- response_body_filters eval
\&main::gunzip
--- response_body
chunk 0
chunk 1
chunk 2
chunk 3
chunk 4



=== TEST 8: over HTTP/2
--- skip_eval: 2: $ENV{TEST_NGINX_USE_VALGRIND}
--- config
location /a/ { asgi_pass asgi_basics:app; }
--- http2
--- request
GET /a/scope
--- response_body_like eval
qr/"http_version": "2"/



=== TEST 9: a large response (10 MB; 20 kB in EAGAIN mode, a byte a write), streamed
--- config
location /a/ { asgi_pass asgi_basics:app; }
--- request eval
"GET /a/big?$main::BigSize"
--- response_body eval
"x" x $main::BigSize
--- timeout: 60



=== TEST 10: 204 and HEAD: no body; the app's body messages are dropped
--- config
location /a/ { asgi_pass asgi_basics:app; }
--- request eval
["GET /a/204", "HEAD /a/hello"]
--- error_code eval
[204, 200]
--- response_body eval
["", ""]
--- no_error_log
[error]



=== TEST 12: http.response.pathsend: nginx sends the file
--- config
location /a/ { asgi_pass asgi_basics:app; }
--- request
GET /a/pathsend
--- response_body_like eval
qr/\A"""ASGI apps for t\/026-asgi-http\.t/



=== TEST 12b: http.response.zerocopysend: ranges of an open file after a body message, at an offset and from the file's position (which moves), the file closed at once
--- config
location /a/ { asgi_pass asgi_basics:app; }
--- request
GET /a/zerocopy
--- response_body chomp
[abcde23456789abcdefghij
--- no_error_log
[error]



=== TEST 12c: ... one zerocopysend for the whole body gets a Content-Length, and gzip reads the file
--- config
location /a/ { gzip on; gzip_min_length 1; gzip_types text/plain; asgi_pass asgi_basics:app; }
--- request
GET /a/zerocopy_whole
--- more_headers
Accept-Encoding: gzip
--- response_headers
Content-Encoding: gzip
--- response_body_filters eval
\&main::gunzip
--- response_body chomp
0123456789abcdefghij
--- no_error_log
[error]



=== TEST 12d: ... and without gzip, the length
--- config
location /a/ { asgi_pass asgi_basics:app; }
--- request
GET /a/zerocopy_whole
--- response_headers
Content-Length: 20



=== TEST 12e: zerocopysend past the file's end: 500, the fault named
--- config
location /a/ { asgi_pass asgi_basics:app; }
--- request
GET /a/zerocopy_past_end
--- error_code: 500
--- error_log
asgi: app "asgi_basics:app": http.response.zerocopysend: offset 10 and count 50 run past the file's end (20 bytes)



=== TEST 12f: zerocopysend of something that is not a file: 500, the fault named
--- config
location /a/ { asgi_pass asgi_basics:app; }
--- request
GET /a/zerocopy_not_a_file
--- error_code: 500
--- error_log
asgi: app "asgi_basics:app": 'file' of 'http.response.zerocopysend' must be a file object with fileno()



=== TEST 13: X-Accel-Redirect: nginx serves the other location
--- config
location /a/ { asgi_pass asgi_basics:app; }
location /static/ { internal; alias $TEST_NGINX_APPS/; }
--- request
GET /a/accel
--- response_body_like eval
qr/\A"""ASGI apps/



=== TEST 14: the app raises before its response: 500, the traceback in error_log
--- config
location /a/ { asgi_pass asgi_basics:app; }
--- request
GET /a/raises
--- error_code: 500
--- error_log eval
[qr/\[error\] .*asgi: app "asgi_basics:app" raised:$/,
 qr/asgi_basics\.py", line \d+, in raises$/,
 qr/^ValueError: the app failed on purpose, client: 127\.0\.0\.1, server: localhost, request: "GET \/a\/raises HTTP\/1\.1"/]



=== TEST 14b: ... and the worker serves on
--- config
location /a/ { asgi_pass asgi_basics:app; }
--- request eval
["GET /a/raises", "GET /a/hello", "GET /a/bad_order", "GET /a/hello"]
--- error_code eval
[500, 200, 500, 200]



=== TEST 15: the app raises mid-body: the response is cut (no last chunk)
--- config
location /a/ { asgi_pass asgi_basics:app; }
--- request
GET /a/raises_late HTTP/1.0
--- response_body chomp
partial
--- error_log eval
qr/ValueError: the app failed mid-body on purpose/



=== TEST 16: the app returns without a response: 500
--- config
location /a/ { asgi_pass asgi_basics:app; }
--- request
GET /a/nothing
--- error_code: 500
--- error_log eval
qr/\[error\] .*asgi: app "asgi_basics:app" returned without sending a response, client: 127\.0\.0\.1/



=== TEST 17a: a bad message (a body before the start): 500, and the fault named in error_log
--- config
location /a/ { asgi_pass asgi_basics:app; }
--- request
GET /a/bad_order
--- error_code: 500
--- error_log eval
qr/\[error\] .*asgi: app "asgi_basics:app": the first message must be 'http\.response\.start', not 'http\.response\.body', client: 127\.0\.0\.1, server: localhost, request: "GET \/a\/bad_order /
--- no_error_log
[alert]



=== TEST 17b: a bad message (a status that is not an int): 500, and the fault named in error_log
--- config
location /a/ { asgi_pass asgi_basics:app; }
--- request
GET /a/bad_status
--- error_code: 500
--- error_log eval
qr/\[error\] .*asgi: app "asgi_basics:app": 'status' of 'http\.response\.start' must be an int, not '200', client: 127\.0\.0\.1, server: localhost, request: "GET \/a\/bad_status /
--- no_error_log
[alert]



=== TEST 17c: a bad message (a header that is not a pair of bytes): 500, and the fault named in error_log
--- config
location /a/ { asgi_pass asgi_basics:app; }
--- request
GET /a/bad_header
--- error_code: 500
--- error_log eval
qr/\[error\] .*asgi: app "asgi_basics:app": header 1 of 'http\.response\.start' must be a \[name, value\] pair of bytes, not \('x-text', 'not bytes'\), client: 127\.0\.0\.1, server: localhost, request: "GET \/a\/bad_header /
--- no_error_log
[alert]



=== TEST 17d: a bad message (a header value with CR LF): 500, and the fault named in error_log
--- config
location /a/ { asgi_pass asgi_basics:app; }
--- request
GET /a/bad_header_value
--- error_code: 500
--- error_log eval
qr/\[error\] .*asgi: app "asgi_basics:app": response header "x-evil" has a control character \('\\r'\) at position 1 of its value, client: 127\.0\.0\.1, server: localhost, request: "GET \/a\/bad_header_value /
--- no_error_log
[alert]



=== TEST 17e: a bad message (a body that is str): 500, and the fault named in error_log
--- config
location /a/ { asgi_pass asgi_basics:app; }
--- request
GET /a/bad_body
--- error_code: 500
--- error_log eval
qr/\[error\] .*asgi: app "asgi_basics:app": 'body' of 'http\.response\.body' must be bytes, not str, client: 127\.0\.0\.1, server: localhost, request: "GET \/a\/bad_body /
--- no_error_log
[alert]



=== TEST 18: a message after the response's end raises in the app (and is logged nowhere else)
--- config
location /a/ { asgi_pass asgi_basics:app; }
--- request eval
["GET /a/after_complete", "GET /a/events"]
--- response_body_like eval
["done", qr/\["after_complete", "'http\.response\.body' sent after the response was complete"\]/]



=== TEST 19: work after the response's end (a background task) runs to its end
--- config
location /a/ { asgi_pass asgi_basics:app; }
--- request eval
["GET /a/background", "GET /a/sleep?0.4", "GET /a/events"]
--- response_body_like eval
["answered", "slept", qr/\["background", "ran after the response"\]/]



=== TEST 20: an app that fails its lifespan startup: the worker's start logs why, and its location answers 500 with the reason
--- config
location /failing { asgi_pass asgi_basics:failing_startup; }
location /a/ { asgi_pass asgi_basics:app; }
--- request
GET /failing
--- error_code: 500
--- error_log eval
[qr/\[error\] \d+#\d+: asgi: app "asgi_basics:failing_startup" failed its lifespan startup: the database is down$/,
 qr/\[error\] .*asgi: app "asgi_basics:failing_startup" failed its lifespan startup: the database is down, client: 127\.0\.0\.1/]



=== TEST 20b: ... while the worker's other apps serve
--- config
location /failing { asgi_pass asgi_basics:failing_startup; }
location /a/ { asgi_pass asgi_basics:app; }
--- request eval
["GET /failing", "GET /a/hello"]
--- error_code eval
[500, 200]



=== TEST 21: an app without lifespan support is served
--- config
location /a/ { asgi_pass asgi_basics:no_lifespan; }
--- request
GET /a/
--- response_body
no lifespan here
--- error_log eval
qr/\[info\] .*asgi: app "asgi_basics:no_lifespan" does not run lifespan \(it raised RuntimeError: unsupported scope lifespan\); it is served without/



=== TEST 22: a WSGI callable under asgi_pass: 500 and why
--- config
location /a/ { asgi_pass asgi_basics:not_asgi; }
--- request
GET /a/
--- error_code: 500
--- error_log eval
qr/TypeError: not_asgi\(\) takes 2 positional arguments but 3 were given, client: /



=== TEST 23: an app that cannot be imported: 500 and its traceback
--- config
location /a/ { asgi_pass no_such_module:app; }
--- request
GET /a/
--- error_code: 500
--- error_log eval
qr/\[error\] .*asgi: cannot load app "no_such_module:app":/



=== TEST 24: ASGI 2 (a class called with the scope, its instance with receive and send)
--- config
location /a/ { asgi_pass asgi_basics:Asgi2; }
--- request
GET /a/
--- response_body
asgi 2 GET

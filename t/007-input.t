# wsgi.input over the body nginx has read, and wsgi.errors into error_log.
use Test::Nginx::Socket 'no_plan';
use FindBin;
use lib "$FindBin::Bin/lib";
use WsgiTest;

no_shuffle();
run_tests();

__DATA__

=== TEST 1: read(n), readline(), readline(n), readlines(), read()
--- config
location /input { wsgi_pass pep3333:input_calls; }
--- request eval
"POST /input\nl1\nline 2\nl3\nrest"
--- response_body
b'l1'
b'\n'
b'lin'
b'e 2\n'
[b'l3\n', b'rest']
b''



=== TEST 2: iterating over wsgi.input gives lines
--- config
location /input { wsgi_pass pep3333:input_iter; }
--- request eval
"POST /input\na\nbb\nccc"
--- response_body
b'a\n'
b'bb\n'
b'ccc'



=== TEST 2b: a body in nginx's temp file (read from the file as the app asks): every method as for one in memory
--- config
location /input {
    client_body_in_file_only clean;
    wsgi_pass pep3333:input_calls;
}
location /iter {
    client_body_in_file_only clean;
    wsgi_pass pep3333:input_iter;
}
--- request eval
["POST /input\nl1\nline 2\nl3\nrest", "POST /iter\na\nbb\nccc"]
--- response_body eval
["b'l1'\nb'\\n'\nb'lin'\nb'e 2\\n'\n[b'l3\\n', b'rest']\nb''\n",
 "b'a\\n'\nb'bb\\n'\nb'ccc'\n"]



=== TEST 3: a chunked request body arrives whole, with CONTENT_LENGTH
--- config
location /size { wsgi_pass pep3333:input_size; }
--- raw_request eval
"POST /size HTTP/1.1\r
Host: localhost\r
Connection: close\r
Transfer-Encoding: chunked\r
\r
5\r
hello\r
6\r
 world\r
0\r
\r
"
--- response_body
11 11



=== TEST 4: a body over client_max_body_size gets 413 before the app runs
--- config
location /size {
    client_max_body_size 10;
    wsgi_pass pep3333:input_size;
}
--- request eval
"POST /size\n" . ("x" x 100)
--- error_code: 413
--- error_log
client intended to send too large body



=== TEST 5: a 5 MB body spooled to a temp file reads back whole
--- config
location /size {
    client_max_body_size 10m;
    wsgi_pass pep3333:input_size;
}
--- request eval
"POST /size\n" . ("z" x 5_000_000)
--- response_body
5000000 5000000



=== TEST 6: wsgi.errors writes each line to error_log with the request's context
--- config
location /errors { wsgi_pass pep3333:errors_lines; }
--- request
GET /errors
--- response_body
logged
--- error_log eval
[qr/\[error\] .*: \*\d+ first line, client: 127\.0\.0\.1, server: localhost, request: "GET \/errors HTTP\/1\.1"/,
 qr/\[error\] .*: \*\d+ second line, client/,
 qr/\[error\] .*: \*\d+ third line, client/,
 qr/\[error\] .*: \*\d+ unterminated, client/]



=== TEST 7: without a body, every wsgi.input method is at the end of the stream
--- config
location /input { wsgi_pass pep3333:input_calls; }
location /iter { wsgi_pass pep3333:input_iter; }
--- request eval
["GET /input", "GET /iter"]
--- response_body eval
["b''\nb''\nb''\nb''\n[]\nb''\n", "\n"]



=== TEST 8: wsgi.errors written from an app's own thread goes to the worker's log (inline), or to the request's (thread mode: the event loop logs it)
--- config
location /thread { wsgi_pass pep3333:errors_from_thread; }
--- request
GET /thread
--- response_body
done
--- error_log eval
$ENV{TEST_NGINX_WSGI_THREADS}
    ? qr/\[error\] \d+#\d+: \*\d+ line from an app thread, client: 127\.0\.0\.1, .*request: "GET \/thread HTTP\/1\.1"/
    : qr/\[error\] \d+#\d+: line from an app thread$/

# Serving apps: environ, status and headers, iterables, close(), two apps.
use Test::Nginx::Socket 'no_plan';
use FindBin;
use lib "$FindBin::Bin/lib";
use WsgiTest;

# The module's debug traces are compiled in only for an nginx built
# --with-debug (the test build's; the release build's is not).
our $WithDebug = `$ENV{TEST_NGINX_BINARY} -V 2>&1` =~ /--with-debug/;

master_on();
workers(2);
no_shuffle();
run_tests();

__DATA__

=== TEST 1: hello world
--- config
location /hello {
    wsgi_pass basics:hello;
}
--- request
GET /hello
--- response_headers
Content-Type: text/plain
Content-Length: 13
--- response_body chomp
Hello, world!
--- no_error_log
[error]



=== TEST 2: request line and headers reach the environ
--- config
location /env {
    wsgi_pass basics:echo_environ;
}
--- request
GET /env/a%20b?REQUEST_METHOD&SCRIPT_NAME&PATH_INFO&REQUEST_URI&SERVER_PROTOCOL&SERVER_NAME&HTTP_X_CUSTOM_HEADER&HTTP_ACCEPT&HTTP_COOKIE&REMOTE_ADDR&CONTENT_TYPE&CONTENT_LENGTH&HTTP_CONTENT_TYPE
--- more_headers
X-Custom-Header: some value
Accept: text/plain
Accept: text/html
Cookie: a=1
Cookie: b=2
--- response_body
REQUEST_METHOD=GET
SCRIPT_NAME=
PATH_INFO=/env/a b
REQUEST_URI=/env/a%20b?REQUEST_METHOD&SCRIPT_NAME&PATH_INFO&REQUEST_URI&SERVER_PROTOCOL&SERVER_NAME&HTTP_X_CUSTOM_HEADER&HTTP_ACCEPT&HTTP_COOKIE&REMOTE_ADDR&CONTENT_TYPE&CONTENT_LENGTH&HTTP_CONTENT_TYPE
SERVER_PROTOCOL=HTTP/1.1
SERVER_NAME=localhost
HTTP_X_CUSTOM_HEADER=some value
HTTP_ACCEPT=text/plain, text/html
HTTP_COOKIE=a=1; b=2
REMOTE_ADDR=127.0.0.1
CONTENT_TYPE=<missing>
CONTENT_LENGTH=<missing>
HTTP_CONTENT_TYPE=<missing>



=== TEST 3: server port and query string
--- config
location /env {
    wsgi_pass basics:echo_environ;
}
--- request
GET /env?SERVER_PORT&QUERY_STRING
--- response_body_like eval
qr/\ASERVER_PORT=$ENV{TEST_NGINX_SERVER_PORT}\nQUERY_STRING=SERVER_PORT&QUERY_STRING\n\z/



=== TEST 4: the wsgi.* keys
--- config
location /wsgi {
    wsgi_pass basics:wsgi_keys;
}
--- request
GET /wsgi
--- response_body eval
# True in thread mode (t/threads/).
"wsgi.version=(1, 0)
wsgi.url_scheme='http'
wsgi.multithread=" . ($ENV{TEST_NGINX_WSGI_THREADS} ? "True" : "False") . "
wsgi.multiprocess=True
wsgi.run_once=False
wsgi.input_terminated=True
wsgi.input.read=b''
wsgi.errors.write=True
"



=== TEST 5: the app's status line, reason and headers reach the client
--- config
location /teapot {
    wsgi_pass basics:custom_status;
}
--- request
GET /teapot
--- error_code: 418
--- response_headers
Content-Type: application/x-tea
X-Brew: earl grey
--- raw_response_headers_like chomp
^HTTP/1\.1 418 I'm a teapot\r\n.*Set-Cookie: a=1; Path=/\r\nSet-Cookie: b=2; Path=/\r\n
--- response_body
short and stout



=== TEST 5.1: a latin-1 status reason and header value go out as latin-1 bytes, the value's blanks trimmed
--- config
location /latin1 {
    wsgi_pass basics:latin1_head;
}
--- request
GET /latin1
--- raw_response_headers_like chomp
^HTTP/1\.1 200 Tr\xe8s bien\r\n.*X-Drink: caf\xe9\r\n
--- response_body
ok



=== TEST 5.2: repeated Cache-Control fields both reach the client
--- config
location /cc {
    wsgi_pass basics:two_cache_controls;
}
--- request
GET /cc
--- raw_response_headers_like chomp
\r\nCache-Control: private\r\nCache-Control: no-transform\r\n
--- response_body
cached?



=== TEST 5.3: ... and nginx's expires replaces them with its own, one field (nginx finds where the module keeps them: a chain since 1.23, an array before)
--- config
location /cc {
    expires 1h;
    wsgi_pass basics:two_cache_controls;
}
--- request
GET /cc
--- raw_response_headers_like chomp
\r\nCache-Control: max-age=3600\r\n
--- raw_response_headers_unlike
Cache-Control: (?:private|no-transform)
--- response_body
cached?



=== TEST 6: a generator of several chunks, sent chunked
--- config
location /chunks {
    wsgi_pass basics:chunks;
}
--- request
GET /chunks
--- response_headers
Transfer-Encoding: chunked
!Content-Length
--- response_body
chunk 0
chunk 1
chunk 2
chunk 3
chunk 4



=== TEST 7: a list of several items
--- config
location /list {
    wsgi_pass basics:list_body;
}
--- request
GET /list
--- response_body
one two three



=== TEST 8: close() is called once the body is sent
--- config
location /closing {
    wsgi_pass basics:closing;
}
--- request
GET /closing
--- response_body
abc
--- error_log
close() called after 3 parts



=== TEST 9: close() is called for HEAD, and no body is sent
--- config
location /closing {
    wsgi_pass basics:closing;
}
--- request
HEAD /closing
--- response_body
--- error_log
close() called after 3 parts



=== TEST 10: a request body reaches wsgi.input, with CONTENT_TYPE and CONTENT_LENGTH
--- config
location /post {
    wsgi_pass basics:post_echo;
}
--- request
POST /post
name=value&x=1
--- more_headers
Content-Type: application/x-www-form-urlencoded
--- response_body
POST application/x-www-form-urlencoded 14 name=value&x=1



=== TEST 11: a body larger than client_body_buffer_size (read from nginx's temp file)
--- config
client_body_buffer_size 1k;
location /post {
    wsgi_pass basics:post_echo;
}
--- request eval
"POST /post\n" . ("0123456789" x 10000)
--- response_body eval
"POST None 100000 " . ("0123456789" x 10000) . "\n"



=== TEST 12: an empty 204 response
--- config
location /empty {
    wsgi_pass basics:empty;
}
--- request
GET /empty
--- error_code: 204
--- response_body



=== TEST 13: write() data comes before the iterable's
--- config
location /write {
    wsgi_pass basics:write_callable;
}
--- request
GET /write
--- response_body
from write(); from the iterable



=== TEST 14: a generator may call start_response when first advanced
--- config
location /lazy {
    wsgi_pass basics:lazy_start;
}
--- request
GET /lazy
--- response_headers
X-Lazy: yes
--- response_body
lazy



=== TEST 15: two locations serve two different apps
--- config
location /hello {
    wsgi_pass basics:hello;
}
location /other {
    wsgi_pass basics:other_app;
}
--- request eval
["GET /hello", "GET /other", "GET /hello"]
--- response_body eval
["Hello, world!", "I am the other app\n", "Hello, world!"]



=== TEST 16: an app given as a path to a .py file, relative to nginx.conf
The empty http_config keeps WsgiTest's wsgi_python_path out: the path alone finds the app.
--- http_config
--- config
location /file {
    wsgi_pass $TEST_NGINX_APPS/basics.py:hello;
}
--- request
GET /file
--- response_body chomp
Hello, world!



=== TEST 17: wsgi_pass inside "if" in a location
--- config
location /cond {
    if ($arg_other) {
        wsgi_pass basics:other_app;
    }
    wsgi_pass basics:hello;
}
--- request eval
["GET /cond", "GET /cond?other=1"]
--- response_body eval
["Hello, world!", "I am the other app\n"]



=== TEST 18: error_log at debug level (nginx --with-debug) traces each state of a request
--- skip_eval: 7: !$main::WithDebug
--- config
location /hello { wsgi_pass basics:hello; }
--- request
GET /hello
--- response_body chomp
Hello, world!
--- error_log eval
$ENV{TEST_NGINX_WSGI_THREADS}
    ? ["wsgi: reading the request body", "wsgi: request ReadingBody -> Queued",
       "wsgi: request Queued -> Running", "wsgi: request Running -> Done", "wsgi: finalize 0"]
    : ["wsgi: reading the request body", "wsgi: request ReadingBody -> Running",
       "wsgi: request Running -> Done", "wsgi: finalize 0"]

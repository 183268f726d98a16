# Response framing: the app's Content-Length is honoured both ways; HEAD,
# 204 and 304 send no body and still close the iterable.
use Test::Nginx::Socket 'no_plan';
use FindBin;
use lib "$FindBin::Bin/lib";
use WsgiTest;

no_shuffle();
run_tests();

__DATA__

=== TEST 1: data beyond the app's Content-Length is not sent
--- config
location /long { wsgi_pass pep3333:longer_than_declared; }
--- request
GET /long
--- response_headers
Content-Length: 5
--- response_body chomp
12345
--- error_log
the app's body is longer than its Content-Length (5 bytes); the rest is not sent



=== TEST 2: a body shorter than its Content-Length ends with the connection closed (a proxy sees it cut)
--- config
location /short { wsgi_pass pep3333:shorter_than_declared; }
location /via-proxy { proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/short; }
--- request
GET /via-proxy HTTP/1.0
--- error_log
the app's body ended 86 bytes short of its Content-Length (100); closing the connection
upstream prematurely closed connection while reading upstream
--- ignore_response_body



=== TEST 3: HEAD sends the header only, and close() is called
--- config
location /head { wsgi_pass pep3333:head_with_body; }
--- request
HEAD /head
--- response_headers
Content-Length: 12
--- response_body
--- error_log
head: close() called



=== TEST 4: 204 sends no body even when the app gives one, and close() is called
--- config
location /204 { wsgi_pass pep3333:no_content; }
--- request
GET /204
--- error_code: 204
--- response_headers
!Content-Length
!Content-Type
--- response_body
--- error_log
204: close() called



=== TEST 5: 304 sends no body, and close() is called
--- config
location /304 { wsgi_pass pep3333:not_modified; }
--- request
GET /304
--- error_code: 304
--- response_headers
ETag: "v1"
--- response_body
--- error_log
304: close() called



=== TEST 6: a one-item tuple gets a Content-Length
--- config
location /tuple { wsgi_pass pep3333:one_item_tuple; }
--- request
GET /tuple
--- response_headers
Content-Length: 11
--- response_body
tuple body



=== TEST 7: write() called inside a generator keeps its order
--- config
location /mixed { wsgi_pass pep3333:write_then_yield; }
--- request
GET /mixed
--- response_body
written 1
yielded 1
written 2
yielded 2



=== TEST 8: a file_wrapper response
--- config
location /file { wsgi_pass pep3333:file_wrapper; }
--- request
GET /file
--- response_body eval
"0123456789" x 1000

# Apps wrapped in the standard library's wsgiref.validate.validator run
# unchanged: the environ, start_response, wsgi.input, wsgi.errors and the
# iterable protocol (close() included) are what PEP 3333 says. A violation
# raises AssertionError in the app, which would show as a 500.
use Test::Nginx::Socket 'no_plan';
use FindBin;
use lib "$FindBin::Bin/lib";
use WsgiTest;

no_shuffle();
# The validator's complaints, unless a block checks the log itself.
block_defaults(no_error_log => "[error]\nAssertionError\nWSGIWarning", unless => ['error_log']);
run_tests();

__DATA__

=== TEST 1: a plain app with a request body
--- config
location /v { wsgi_pass pep3333:validated_plain; }
--- request
POST /v
payload
--- response_body chomp
ok:payload



=== TEST 2: a generator
--- config
location /v { wsgi_pass pep3333:validated_generator; }
--- request
GET /v?x=1
--- response_body
part 0
part 1
part 2



=== TEST 3: readline and readlines on wsgi.input
--- config
location /v { wsgi_pass pep3333:validated_lines; }
--- request eval
"PUT /v\nfirst\nsecond\nthird\n"
--- error_code: 201
--- response_body
first
second
|third



=== TEST 4: wsgi.errors and a 404
--- config
location /v { wsgi_pass pep3333:validated_errors; }
--- request
GET /v
--- error_code: 404
--- response_body
nothing here
--- error_log
validated app writes to wsgi.errors



=== TEST 5: HEAD through the validator
--- config
location /v { wsgi_pass pep3333:validated_generator; }
--- request
HEAD /v
--- response_body



=== TEST 6: the full environ passes the validator's checks
--- config
location /v { wsgi_pass pep3333:validated_environ; }
--- request
GET /v/path?q=1
--- more_headers
Cookie: a=b
--- response_body_like: "PATH_INFO": "/v/path"

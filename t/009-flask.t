# The Flask example (nginx-conf/flask/) from its virtualenv: pages, JSON, a
# form, a 5 MB multipart upload, a redirect, cookies, a streamed response,
# and the app mounted under a prefix.
use Test::Nginx::Socket 'no_plan';
use FindBin;
use lib "$FindBin::Bin/lib";
use WsgiTest;
use Digest::SHA qw(sha256_hex);

our $Upload = join("", map { sprintf("%07d\n", $_) } 0 .. 624_999);   # 5,000,000 bytes
our $UploadSha = sha256_hex($Upload);

master_on();
workers(1);
no_shuffle();
block_defaults(
    http_config => <<_EOC_,
wsgi_python_home $ENV{TEST_NGINX_VENV};
wsgi_python_path $ENV{TEST_NGINX_EXAMPLES}/flask;
_EOC_
    config => <<_EOC_,
location ~ ^/ {
    client_max_body_size 16m;
    wsgi_pass flask_example:app;
}
_EOC_
    no_error_log => "[error]",
);
run_tests();

__DATA__

=== TEST 1: a page
--- request
GET /
--- response_headers
Content-Type: text/html; charset=utf-8
--- response_body_like: <h1>Flask, served by nginx itself</h1>



=== TEST 2: JSON
--- request
GET /api/items
--- response_headers
Content-Type: application/json
--- response_body_like: ^\{"items":\[\{"id":1,"name":"teapot"\},\{"id":2,"name":"kettle"\}\],"script_root":""\}$



=== TEST 3: a form POST
--- request
POST /form
name=Ada&age=36
--- more_headers
Content-Type: application/x-www-form-urlencoded
--- response_body
hello Ada, you are 36



=== TEST 4: a 5 MB multipart upload
--- more_headers
Content-Type: multipart/form-data; boundary=----ngxwsgi
--- request eval
"POST /upload\n------ngxwsgi\r\nContent-Disposition: form-data; name=\"file\"; filename=\"big.bin\"\r\nContent-Type: application/octet-stream\r\n\r\n$main::Upload\r\n------ngxwsgi--\r\n"
--- response_body_like eval
qr/^\{"filename":"big\.bin","sha256":"$main::UploadSha","size":5000000\}$/



=== TEST 4b: the same upload read as it arrives (wsgi_request_buffering off, nginx-conf/'s /upload)
--- config
location ~ ^/ {
    client_max_body_size 16m;
    wsgi_threads 8;
    wsgi_request_buffering off;
    wsgi_pass flask_example:app;
}
--- more_headers
Content-Type: multipart/form-data; boundary=----ngxwsgi
--- request eval
"POST /upload\n------ngxwsgi\r\nContent-Disposition: form-data; name=\"file\"; filename=\"big.bin\"\r\nContent-Type: application/octet-stream\r\n\r\n$main::Upload\r\n------ngxwsgi--\r\n"
--- response_body_like eval
qr/^\{"filename":"big\.bin","sha256":"$main::UploadSha","size":5000000\}$/



=== TEST 5: a redirect
--- request
GET /old
--- error_code: 302
--- response_headers
Location: /



=== TEST 6: setting a cookie
--- request
GET /cookie/set
--- raw_response_headers_like: Set-Cookie: flavour=oatmeal; HttpOnly; Path=/\r\n



=== TEST 7: reading a cookie
--- request
GET /cookie/get
--- more_headers
Cookie: flavour=oatmeal
--- response_body
flavour=oatmeal



=== TEST 8: a streamed response
--- request
GET /stream
--- response_headers
Transfer-Encoding: chunked
--- response_body
line 0
line 1
line 2
line 3
line 4



=== TEST 9: mounted under /shop/, Flask builds URLs with the prefix
--- config
location ^~ /shop/ {
    wsgi_param SCRIPT_NAME /shop;
    wsgi_pass flask_example:app;
}
--- request eval
["GET /shop/", "GET /shop/api/items", "GET /shop/old"]
--- response_body_like eval
[qr{href="/shop/api/items"}, qr{"script_root":"/shop"}, qr{}]
--- error_code eval
[200, 200, 302]



=== TEST 11: a protected download: the app says yes with X-Accel-Redirect, nginx sends the file
--- config
location ~ ^/ { wsgi_pass flask_example:app; }
location ^~ /protected/ { internal; alias $TEST_NGINX_EXAMPLES/flask/private/; }
--- request
GET /download/report.txt?token=let-me-in
--- response_headers
Content-Disposition: attachment; filename="report.txt"
Content-Length: 63
!X-Accel-Redirect
--- response_body
The quarterly report: served by nginx, after the app said yes.



=== TEST 12: a protected download the app refuses, and the internal location a client cannot reach
--- config
location ~ ^/ { wsgi_pass flask_example:app; }
location ^~ /protected/ { internal; alias $TEST_NGINX_EXAMPLES/flask/private/; }
--- request eval
["GET /download/report.txt?token=guess", "GET /protected/report.txt"]
--- error_code eval
[403, 404]



=== TEST 13: the same download through the framework's file response: wsgi.file_wrapper, which nginx sends, ranges included
--- request eval
["GET /send/report.txt?token=let-me-in", "GET /send/report.txt?token=let-me-in"]
--- more_headers eval
["", "Range: bytes=4-12"]
--- error_code eval
[200, 206]
--- response_headers_like eval
["Content-Disposition: attachment; filename=\"?report.txt\"?", "Content-Range: bytes 4-12/63"]
--- response_body eval
["The quarterly report: served by nginx, after the app said yes.\n", "quarterly"]

# wsgi.file_wrapper over a regular file: nginx sends the file itself
# (sendfile on and off), from the app's position, as far as its
# Content-Length goes, and answers Range requests as for a static file;
# anything else in the wrapper is iterated. close() runs on every path.
# (A slow client, gzip and HTTP/2: t/023.)
use Test::Nginx::Socket 'no_plan';
use FindBin;
use lib "$FindBin::Bin/lib";
use WsgiTest;

# The bytes t/apps/files.py writes: 0..255 over and over.
sub pattern {
    my ($size, $from) = @_;
    $from //= 0;
    my $all = join('', map { chr } 0 .. 255) x (int(($from + $size) / 256) + 1);
    return substr($all, $from, $size);
}

our $Big = 5_000_000;

no_shuffle();
block_defaults(config => 'location /f { wsgi_pass files:serve; }', unless => ['config']);
run_tests();

__DATA__

=== TEST 1: an empty file
--- request
GET /f?name=empty.bin&size=0
--- response_headers
Content-Length: 0
--- response_body
--- error_log
files: close() called



=== TEST 2: a one-byte file
--- request
GET /f?name=one.bin&size=1
--- response_headers
Content-Length: 1
--- response_body eval
main::pattern(1)



=== TEST 3: 5 MB (more than sendfile_max_chunk), sendfile on: byte-exact, with the file's length
--- config
sendfile on;
location /f { wsgi_pass files:serve; }
--- request
GET /f?name=big.bin&size=5000000
--- response_headers
Content-Length: 5000000
Accept-Ranges: bytes
--- response_body eval
main::pattern($::Big)
--- error_log
files: close() called



=== TEST 4: 5 MB, sendfile off (nginx's own reads into output_buffers): byte-exact
--- config
sendfile off;
location /f { wsgi_pass files:serve; }
--- request
GET /f?name=big.bin&size=5000000
--- response_body eval
main::pattern($::Big)



=== TEST 5: from where the app seeked to
--- request
GET /f?name=big.bin&size=5000000&seek=4999000
--- response_headers
Content-Length: 1000
--- response_body eval
main::pattern(1000, 4999000)



=== TEST 6: from where the app read to (its file's buffer ran ahead)
--- request
GET /f?name=small.bin&size=20000&read=100
--- response_headers
Content-Length: 19900
--- response_body eval
main::pattern(19900, 100)



=== TEST 7: as far as the app's Content-Length goes
--- request
GET /f?name=small.bin&size=20000&length=10
--- response_headers
Content-Length: 10
--- response_body eval
main::pattern(10)
--- error_log
the app's body is longer than its Content-Length (10 bytes); the rest is not sent



=== TEST 8: a Content-Length beyond the file's end: the response is aborted
--- request
GET /f?name=small.bin&size=20000&length=30000
--- ignore_response
--- error_log
the app's body ended 10000 bytes short of its Content-Length (30000); closing the connection
files: close() called



=== TEST 9: a range
--- request
GET /f?name=small.bin&size=20000
--- more_headers
Range: bytes=256-265
--- error_code: 206
--- response_headers
Content-Range: bytes 256-265/20000
Content-Length: 10
--- response_body eval
main::pattern(10, 256)



=== TEST 10: a suffix range
--- request
GET /f?name=small.bin&size=20000
--- more_headers
Range: bytes=-5
--- error_code: 206
--- response_headers
Content-Range: bytes 19995-19999/20000
--- response_body eval
main::pattern(5, 19995)



=== TEST 11: several ranges: multipart/byteranges
--- request
GET /f?name=small.bin&size=20000
--- more_headers
Range: bytes=0-1,256-257
--- error_code: 206
--- response_headers_like
Content-Type: multipart/byteranges; boundary=\d+
--- response_body_like eval
qr{\r\n--\d+\r\nContent-Type: application/octet-stream\r\nContent-Range: bytes 0-1/20000\r\n\r\n\x00\x01\r\n--\d+\r\nContent-Type: application/octet-stream\r\nContent-Range: bytes 256-257/20000\r\n\r\n\x00\x01\r\n--\d+--\r\n}



=== TEST 12: a range beyond the end: 416
--- request
GET /f?name=small.bin&size=20000
--- more_headers
Range: bytes=30000-
--- error_code: 416
--- response_headers
Content-Range: bytes */20000



=== TEST 13: If-Range with the app's Last-Modified: a range when it matches, the whole file when not
--- request eval
["GET /f?name=small.bin&size=20000&last_modified=Tue,%2001%20Dec%202026%2010:00:00%20GMT",
 "GET /f?name=small.bin&size=20000&last_modified=Tue,%2001%20Dec%202026%2010:00:00%20GMT"]
--- more_headers eval
["Range: bytes=0-1\nIf-Range: Tue, 01 Dec 2026 10:00:00 GMT", "Range: bytes=0-1\nIf-Range: Mon, 30 Nov 2026 10:00:00 GMT"]
--- error_code eval
[206, 200]
--- response_headers eval
["Last-Modified: Tue, 01 Dec 2026 10:00:00 GMT", "Content-Length: 20000"]



=== TEST 14: If-Range with the app's ETag
--- request eval
["GET /f?name=small.bin&size=20000&etag=%22v1%22", "GET /f?name=small.bin&size=20000&etag=%22v1%22"]
--- more_headers eval
["Range: bytes=0-1\nIf-Range: \"v1\"", "Range: bytes=0-1\nIf-Range: \"v2\""]
--- error_code eval
[206, 200]



=== TEST 15: the app's Accept-Ranges: bytes is said once; with none, no range is made
--- request eval
["GET /f?name=small.bin&size=20000&accept_ranges=bytes", "GET /f?name=small.bin&size=20000&accept_ranges=none"]
--- more_headers eval
["", "Range: bytes=0-1"]
--- error_code eval
[200, 200]
--- raw_response_headers_unlike eval
[qr/Accept-Ranges.*Accept-Ranges/s, qr/Accept-Ranges: bytes/]



=== TEST 16: a 206 the app made is its own: nginx's range filter leaves it alone
--- request
GET /f?name=small.bin&size=20000&status=206%20Partial%20Content&seek=19990&content_range=bytes%2019990-19999/20000
--- more_headers
Range: bytes=0-1
--- error_code: 206
--- response_headers
Content-Range: bytes 19990-19999/20000
Content-Length: 10
--- response_body eval
main::pattern(10, 19990)



=== TEST 17: HEAD: the file's length, no body, close() runs
--- request
HEAD /f?name=small.bin&size=20000
--- response_headers
Content-Length: 20000
--- response_body
--- error_log
files: close() called



=== TEST 18: io.BytesIO through the wrapper is iterated in its blocks: no ranges
--- config
location /m { wsgi_pass files:in_memory; }
--- request
GET /m?block=3000
--- more_headers
Range: bytes=0-1
--- response_headers
!Accept-Ranges
--- response_body eval
"0123456789" x 1000
--- error_log
files: close() called



=== TEST 19: the wrapper has wsgiref's attributes
--- config
location /a { wsgi_pass files:wrapper_attributes; }
--- request
GET /a
--- response_body
FileWrapper 123 BytesIO



=== TEST 20: what the app gave write() comes before the file (which is then iterated)
--- config
location /w { wsgi_pass files:written_first; }
--- request
GET /w?name=ten.bin&size=10
--- response_body eval
"written first|" . main::pattern(10)
--- error_log
files: close() called

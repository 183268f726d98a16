# Never delay a block: each chunk reaches the client at once, before the
# app's next pause, plain, through gzip, over HTTP/1.0 and HTTP/2; with
# wsgi_buffering on only explicit flushes and the end send. Each app yields a
# chunk, then blocks 1.5 s; the client gives up after 0.8 s and the test
# checks what had arrived by then. (HTTP/1.1 chunked framing is checked with
# a raw socket in t/012-slow-clients.t: Test::Nginx rejects a chunked body
# cut short.)
use Test::Nginx::Socket 'no_plan';
use FindBin;
use lib "$FindBin::Bin/lib";
use WsgiTest;
use Compress::Raw::Zlib;
use Digest::MD5 qw(md5_hex);

# The body of streaming:mixed_sizes (t/apps/streaming.py), as its MD5.
my @mixed_sizes = (1, 4096, 4097, 3, 0, 65536, 10, (4096) x 5, 2, 16383, 1, 65537, (700) x 40, 5);
our $mixed_md5 = md5_hex(join "", map { chr(65 + $_ % 26) x $mixed_sizes[$_] } 0 .. $#mixed_sizes);

sub gunzip {
    my ($in) = @_;
    my ($inflate) = Compress::Raw::Zlib::Inflate->new(-WindowBits => WANT_GZIP);
    my $out = '';
    $inflate->inflate($in, $out);
    return $out;
}

# What a gzip stream cut short decodes to: everything before the last sync
# flush.
sub gunzip_partial {
    my ($in) = @_;
    my ($inflate) = Compress::Raw::Zlib::Inflate->new(-WindowBits => WANT_GZIP);
    my $out = '';
    $inflate->inflate($in, $out);
    return $out;
}

no_shuffle();
# The client gives up after 0.8 s, unless the block sets its own timeout (HTTP/2, whole responses).
block_defaults(timeout => "0.8", abort => "", unless => [qw(http2 no_timeout)]);

# EAGAIN mode (make test-eagain) lets a socket take a byte per event-loop
# turn. Inline, x-wsgiorg.flush() hands what came before it to nginx and
# returns; what the socket did not take goes out once the app gives the
# loop back, not while the app sleeps. (In thread mode it goes at once.)
our $InlineUnderEagain = $ENV{TEST_NGINX_LD_PRELOAD} && !$ENV{TEST_NGINX_WSGI_THREADS};
run_tests();

__DATA__

=== TEST 1: the first chunk arrives before the app's pause ends (HTTP/1.0)
--- config
location /s { wsgi_pass streaming:first_then_sleep; }
--- request
GET /s HTTP/1.0
--- response_body
first chunk



=== TEST 2: ... even when it is smaller than postpone_output
--- config
postpone_output 64k;
location /s { wsgi_pass streaming:first_then_sleep; }
--- request
GET /s HTTP/1.0
--- response_body
first chunk



=== TEST 3: ... and through gzip, which emits a sync flush per chunk
--- config
gzip on;
gzip_types text/plain;
gzip_min_length 1;
gzip_http_version 1.0;
location /s { wsgi_pass streaming:first_then_sleep; }
--- more_headers
Accept-Encoding: gzip
--- request
GET /s HTTP/1.0
--- response_headers
Content-Encoding: gzip
--- response_body_filters eval
\&main::gunzip_partial
--- response_body
first chunk



=== TEST 4: ... and over HTTP/2
--- config
location /s { wsgi_pass streaming:first_then_sleep; }
--- http2
--- timeout: 0.8
--- curl_error eval
qr/Operation timed out after \d+ milliseconds with 12 bytes received/
--- request
GET /s
--- response_body
first chunk



=== TEST 5: wsgi_buffering on: nothing is sent before the end (not even the header)
--- config
wsgi_buffering on;
location /s { wsgi_pass streaming:first_then_sleep; }
--- request
GET /s HTTP/1.0
--- error_code:
--- response_body:



=== TEST 6: wsgi_buffering on: the whole response arrives at the end
--- config
wsgi_buffering on;
location /s { wsgi_pass streaming:first_then_sleep; }
--- no_timeout
--- timeout: 5
--- request
GET /s
--- response_body
first chunk
second chunk



=== TEST 7: wsgi_buffering on: x-wsgiorg.flush() sends what came before it
--- skip_eval: 2: $main::InlineUnderEagain
--- config
wsgi_buffering on;
location /s { wsgi_pass streaming:flush_then_sleep; }
--- request
GET /s HTTP/1.0
--- response_body
flushed chunk



=== TEST 8: ... through gzip too
--- skip_eval: 2: $main::InlineUnderEagain
--- config
wsgi_buffering on;
gzip on;
gzip_types text/plain;
gzip_min_length 1;
gzip_http_version 1.0;
location /s { wsgi_pass streaming:flush_then_sleep; }
--- more_headers
Accept-Encoding: gzip
--- request
GET /s HTTP/1.0
--- response_body_filters eval
\&main::gunzip_partial
--- response_body
flushed chunk



=== TEST 9: the app's "X-Accel-Buffering: yes" turns buffering on for its response, and is not sent
--- config
location /s { wsgi_pass streaming:accel_yes_then_sleep; }
--- request
GET /s HTTP/1.0
--- error_code:
--- response_body:



=== TEST 10: the app's "X-Accel-Buffering: no" overrides wsgi_buffering on, and is not sent
--- config
wsgi_buffering on;
location /s { wsgi_pass streaming:accel_no_then_sleep; }
--- request
GET /s HTTP/1.0
--- response_headers
!X-Accel-Buffering
--- response_body
first chunk



=== TEST 11: a whole buffered response, header included, with many small chunks
--- config
wsgi_buffering on;
location /s { wsgi_pass streaming:many_small; }
--- no_timeout
--- request
GET /s
--- response_body eval
CORE::join "", map { sprintf "%03d\n", $_ } 0 .. 99



=== TEST 12: the first chunk arrives at once when it is the client who is slow to start (HTTP/2, gzip)
--- config
gzip on;
gzip_types text/plain;
gzip_min_length 1;
location /s { wsgi_pass streaming:first_then_sleep; }
--- http2
--- curl_options: --compressed
--- timeout: 0.8
--- curl_error eval
qr/Operation timed out/
--- request
GET /s
--- response_body
first chunk



=== TEST 13: chunks of every size around the copy limits arrive whole and in order (wsgi_buffering on)
--- config
wsgi_buffering on;
location /s { wsgi_pass streaming:mixed_sizes; }
--- no_timeout
--- request
GET /s
--- response_body_filters eval
\&Digest::MD5::md5_hex
--- response_body eval
$main::mixed_md5



=== TEST 14: ... with an x-wsgiorg.flush() among them, through gzip
--- config
wsgi_buffering on;
gzip on;
gzip_types text/plain;
gzip_min_length 1;
location /s { wsgi_pass streaming:mixed_sizes; }
--- no_timeout
--- more_headers
Accept-Encoding: gzip
--- request
GET /s?flush
--- response_headers
Content-Encoding: gzip
--- response_body_filters eval
[\&main::gunzip, \&Digest::MD5::md5_hex]
--- response_body eval
$main::mixed_md5



=== TEST 15: ... and each flushed at once (the default)
--- config
location /s { wsgi_pass streaming:mixed_sizes; }
--- no_timeout
--- request
GET /s
--- response_body_filters eval
\&Digest::MD5::md5_hex
--- response_body eval
$main::mixed_md5

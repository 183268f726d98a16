# wsgi_request_buffering off: the app is called once the request head is
# in and reads the body as the client sends it (thread mode), with
# backpressure both ways, over HTTP/1.1 (Content-Length, chunked) and
# HTTP/2; a body that cannot be read to its end makes wsgi.input raise and
# ends the request with nginx's code, the worker serving on.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use NginxRunner;
use Test::More;
use Uploads qw(head chunk called_before_the_body echo_both_ways expect_continue http2_bodies bounded_upload patient answers_without_reading);

delete $ENV{TEST_NGINX_WSGI_THREADS};

my $SERVER = '
    client_max_body_size 1g;
    client_body_timeout 1s;
    access_log logs/access.log;
    location /rss { wsgi_pass bodies:rss; }
    location /first { wsgi_pass uploads:first_read; }
    location /echo { wsgi_pass uploads:echo_lines; }
    location /lines { wsgi_pass uploads:lines; }
    location /sha256 { wsgi_pass uploads:sha256; }
    location /slow { wsgi_pass uploads:slow_sha256; }
    location /ignores { wsgi_pass uploads:ignores; }
    location /reader { client_max_body_size 100k; wsgi_pass uploads:Reader; }
    location /patient { wsgi_read_timeout 1s; wsgi_pass uploads:sha256; }';

sub start {
    my (%args) = @_;
    return NginxRunner->new(
        http => 'wsgi_threads 2; wsgi_request_buffering off;',
        server => $SERVER,
        %args
    );
}

sub response { NginxRunner::response(@_) }

called_before_the_body(\&start, 'the app is called once the head is in, and reads the body as it arrives',
    sized_call => [qr/called, CONTENT_LENGTH='26'/, 'called, with the declared CONTENT_LENGTH'],
    sized_first => [qr/first read: b'0123456789abcdef'/,
        'read(16) returned the first 16 bytes while the client held back the rest'],
    chunked_call => [qr/called, CONTENT_LENGTH=None/, 'a chunked body: no CONTENT_LENGTH'],
    chunked_first => [qr/first read: b'x{16}'/, 'the first chunk read before the next is sent']);
echo_both_ways(\&start);

subtest 'readline, readline(n), readlines and iteration across pieces as they arrive' => sub {
    my $ngx = start();
    my $s = $ngx->client;
    print $s head('/lines', 'Transfer-Encoding: chunked');
    for my $piece ("a1\nb2", "2\nc333", "\nd", "\ne\nlast") {
        print $s chunk($piece);
        select(undef, undef, undef, 0.05);
    }
    print $s "0\r\n\r\n";
    my ($status, $body) = response($s);
    is($body, "[b'a1\\n', b'b22', b'\\n', b'c333\\n', b'd\\n', b'e\\n', b'last', b'']\n",
        'each as a file would give it');
    $ngx->stop;
};

expect_continue(\&start);
http2_bodies(\&start, $SERVER);
bounded_upload(\&start, '/slow', 24,
    'backpressure: an app slower than its client (6.4 MB/s) holds the upload back, not the worker');
bounded_upload(\&start, '/sha256', 100, 'a 100 MiB upload read in 64 KiB pieces: byte for byte, the worker bounded');
patient(\&start, qr/wsgi_read_timeout/);
answers_without_reading(\&start);

# The faults: each makes wsgi.input raise an OSError subclass in the app
# (whose close() runs), ends the request with nginx's code, is said in
# error_log, and the worker serves on.
subtest 'faults mid-body' => sub {
    my $ngx = start();
    my ($pid) = $ngx->worker_pids;

    # A chunked body that grows past client_max_body_size (100k).
    my $s = $ngx->client;
    print $s head('/reader', 'Transfer-Encoding: chunked') . chunk('a' x 10000);
    ok($ngx->wait_log(qr/the reader is called/, 5), 'the app runs while the body arrives');
    eval { print $s chunk('b' x 10000) for 1 .. 20; };
    my ($status) = response($s, 10);
    is($status, 413, 'over client_max_body_size mid-stream: 413');
    ok($ngx->wait_log(qr/client intended to send too large chunked body/, 5), "nginx's line");
    ok($ngx->wait_log(qr/reading the request body for the app failed: the body is larger than client_max_body_size; its wsgi.input raises, answering 413/, 5),
        'the module says why');
    ok($ngx->wait_log(qr/read\(\) raised RequestBodyError \(an OSError: True\) errno=27 /, 5),
        'read() raised an OSError subclass (EFBIG)');
    ok($ngx->wait_log(qr/close\(\) ran/, 5), 'close() ran');

    # client_body_timeout (1s): the client stops sending.
    truncate "$ngx->{root}/logs/error.log", 0;
    $s = $ngx->client;
    print $s head('/reader', 'Content-Length: 50000') . ('c' x 1000);
    my ($data) = NginxRunner::read_until($s, qr/\A(?!)/, 10);
    is($data, '', 'the connection is closed without a response (408 in the access log, as nginx does)');
    ok($ngx->wait_log(qr/failed: the client sent nothing within client_body_timeout; its wsgi.input raises, answering 408/, 5),
        'the module says why');
    ok($ngx->wait_log(qr/errno=110 .*client_body_timeout/, 5), 'read() raised (ETIMEDOUT)');
    ok($ngx->wait_log(qr/close\(\) ran/, 5), 'close() ran');

    # The client leaves mid-body.
    truncate "$ngx->{root}/logs/error.log", 0;
    $s = $ngx->client;
    print $s head('/reader', 'Content-Length: 50000') . ('d' x 1000);
    ok($ngx->wait_log(qr/the reader is called/, 5), 'the app runs');
    close $s;
    ok($ngx->wait_log(qr/failed: the client closed the connection before the body's end; its wsgi.input raises, the request ends/, 5),
        'the module says why');
    ok($ngx->wait_log(qr/errno=104 /, 5), 'read() raised (ECONNRESET)');
    ok($ngx->wait_log(qr/close\(\) ran/, 5), 'close() ran');
    unlike($ngx->error_log, qr/Traceback/, "the module's own exception, let through by the app, is no traceback");

    my @codes = $ngx->access_log =~ m{"POST /reader HTTP/1\.1" (\d{3})}g;
    is("@codes", '413 408 499', 'the access log has 413, 408 and 499');
    my ($status2, $body) = response($ngx->get('/ignores'));
    is($body, "$pid\n", 'the same worker serves on');
    $ngx->stop;
};

done_testing;

# wsgi_request_buffering off under asgi_pass: the app's task starts once
# the request head is in and receive() gives the body as the client sends
# it, with backpressure both ways, over HTTP/1.1 (Content-Length, chunked)
# and HTTP/2; a body that cannot be read to its end ends the request with
# nginx's code and receive() gives http.disconnect, the worker serving on.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use NginxRunner;
use Test::More;
use Digest::SHA;
use Uploads qw(head chunk called_before_the_body echo_both_ways expect_continue http2_bodies bounded_upload patient answers_without_reading);

my $SERVER = '
    client_max_body_size 1g;
    client_body_timeout 1s;
    access_log logs/access.log;
    location / { asgi_pass asgi_uploads:app; }
    location /reader { client_max_body_size 100k; asgi_pass asgi_uploads:app; }
    location /patient { wsgi_read_timeout 1s; asgi_pass asgi_uploads:app; }';

sub start {
    my (%args) = @_;
    return NginxRunner->new(http => 'wsgi_request_buffering off;', server => $SERVER, %args);
}

sub response { NginxRunner::response(@_) }

called_before_the_body(\&start, 'the task starts once the head is in, and receive() gives the body as it arrives',
    sized_call => [qr/called, content-length='26'/, 'called, with the declared length'],
    sized_first => [qr/first message: b'0123456789abcdef' more_body=True/,
        'the first message holds the 16 bytes sent, more_body while the client holds back the rest'],
    chunked_call => [qr/called, content-length=None/, 'a chunked body: no content-length'],
    chunked_first => [qr/first message: b'x{20}' more_body=True/, 'the first chunk before the next is sent']);
echo_both_ways(\&start);
expect_continue(\&start);
http2_bodies(\&start, $SERVER);

my ($largest) = bounded_upload(\&start, '/slow', 24,
    'backpressure: an app slower than its client (10 ms a message) holds the upload back, not the worker');
cmp_ok($largest // 1e9, '<=', 65536, 'no message over 64 KiB (' . ($largest // '?') . ' bytes at most)');
bounded_upload(\&start, '/sha256', 100, 'a 100 MiB upload: byte for byte, the worker bounded');

subtest 'backpressure over HTTP/2: no window is granted while the app does not read' => sub {
    plan skip_all => 'curl is not installed' if system('curl --version >/dev/null 2>&1') != 0;
    my $ngx = start(listen_opts => '', server => "http2 on; $SERVER");
    my (undef, $rss0) = response($ngx->get('/rss'));
    chomp $rss0;
    my $file = "$ngx->{root}/body";
    open my $f, '>', $file or die $!;
    my $sha = Digest::SHA->new(256);
    Uploads::numbered_mib(8, $f, $sha);
    close $f;
    my $out = `curl -s -m 60 --http2-prior-knowledge --data-binary \@$file http://127.0.0.1:$ngx->{h2_port}/slow`;
    my ($digest, $read, $peak, $largest) = split ' ', $out;
    is($read, 8 << 20, 'the whole body, to an app that takes 10 ms a message');
    is($digest, $sha->hexdigest, 'byte for byte');
    cmp_ok($largest, '<=', 65536, "no message over 64 KiB ($largest bytes at most)");
    my $growth = ($peak - $rss0) / (1 << 20);
    cmp_ok($growth, '<', 8, sprintf('the worker grew by %.1f MiB', $growth));
    $ngx->stop;
};
patient(\&start, qr/ReadTimeout|wsgi_read_timeout/);

subtest 'other requests move while a task waits for its body' => sub {
    my $ngx = start();
    my $s = $ngx->client;
    print $s head('/first', 'Content-Length: 26') . '0123456789abcdef';
    ok($ngx->wait_log(qr/first message/, 5), 'the first task waits for the rest of its body');
    my ($status, $body) = response($ngx->get('/ignores'));
    is($status, 200, 'another request is answered meanwhile');
    print $s 'ghijklmnop';
    ($status, $body) = response($s);
    is($body, "26\n", 'then the first one, whole');
    $ngx->stop;
};

answers_without_reading(\&start);

# The faults: each ends the request with nginx's code, receive() gives
# http.disconnect at once, error_log says why, and the worker serves on.
subtest 'faults mid-body' => sub {
    my $ngx = start();
    my ($pid) = $ngx->worker_pids;

    # A chunked body that grows past client_max_body_size (100k).
    my $s = $ngx->client;
    print $s head('/reader', 'Transfer-Encoding: chunked') . chunk('a' x 10000);
    ok($ngx->wait_log(qr/the reader is called/, 5), 'the task runs while the body arrives');
    eval { print $s chunk('b' x 10000) for 1 .. 20; };
    my ($status) = response($s, 10);
    is($status, 413, 'over client_max_body_size mid-stream: 413');
    ok($ngx->wait_log(qr/client intended to send too large chunked body/, 5), "nginx's line");
    ok($ngx->wait_log(qr/asgi: reading the request body for the app failed: the body is larger than client_max_body_size; receive\(\) gives http\.disconnect, answering 413/, 5),
        'the module says why');
    ok($ngx->wait_log(qr/receive\(\) gave http\.disconnect after \d+ bytes/, 5), 'receive() gave the disconnect')
        or diag($ngx->error_log);

    # client_body_timeout (1s): the client stops sending.
    truncate "$ngx->{root}/logs/error.log", 0;
    $s = $ngx->client;
    print $s head('/reader', 'Content-Length: 50000') . ('c' x 1000);
    my ($data) = NginxRunner::read_until($s, qr/\A(?!)/, 10);
    is($data, '', 'the connection is closed without a response (408 in the access log, as nginx does)');
    ok($ngx->wait_log(qr/failed: the client sent nothing within client_body_timeout; receive\(\) gives http\.disconnect, answering 408/, 5),
        'the module says why');
    ok($ngx->wait_log(qr/receive\(\) gave http\.disconnect after 1000 bytes/, 5), 'receive() gave the disconnect');

    # The client leaves mid-body.
    truncate "$ngx->{root}/logs/error.log", 0;
    $s = $ngx->client;
    print $s head('/reader', 'Content-Length: 50000') . ('d' x 1000);
    ok($ngx->wait_log(qr/the reader is called/, 5), 'the task runs');
    close $s;
    ok($ngx->wait_log(qr/failed: the client closed the connection before the body's end; receive\(\) gives http\.disconnect, the request ends/, 5),
        'the module says why');
    ok($ngx->wait_log(qr/receive\(\) gave http\.disconnect after 1000 bytes/, 5), 'receive() gave the disconnect');
    unlike($ngx->error_log, qr/Traceback|\[error\] .*asgi: app/, 'no traceback, no error for the app that returned on the disconnect');

    my @codes = $ngx->access_log =~ m{"POST /reader HTTP/1\.1" (\d{3})}g;
    is("@codes", '413 408 499', 'the access log has 413, 408 and 499');
    my ($status2, $body) = response($ngx->get('/ignores'));
    is($body, "$pid\n", 'the same worker serves on');
    $ngx->stop;
};

done_testing;

# wsgi_request_buffering off under asgi_pass: the app's task starts once
# the request head is in and receive() gives the body as the client sends
# it, with backpressure both ways, over HTTP/1.1 (Content-Length, chunked)
# and HTTP/2; a body that cannot be read to its end ends the request with
# nginx's code and cancels the app's task, the worker serving on.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use NginxRunner;
use Test::More;
use Digest::SHA;

my $MiB = 1 << 20;

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

sub head {
    my ($path, @headers) = @_;
    return "POST $path HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n"
        . join('', map { "$_\r\n" } @headers) . "\r\n";
}

sub chunk { my ($data) = @_; return sprintf("%x\r\n%s\r\n", length $data, $data) }

sub access_log {
    my ($ngx) = @_;
    open my $f, '<', "$ngx->{root}/logs/access.log" or return '';
    local $/;
    return <$f>;
}

# Writes $n MiB of numbered words to $s (and the digest), or to a file.
sub numbered_mib {
    my ($n, $out, $sha) = @_;
    for my $i (0 .. $n - 1) {
        my $piece = pack('N', $i) x ($MiB / 4);
        $sha->add($piece);
        print $out $piece;
    }
}

subtest 'the task starts once the head is in, and receive() gives the body as it arrives' => sub {
    my $ngx = start();
    my $s = $ngx->client;
    print $s head('/first', 'Content-Length: 26') . '0123456789abcdef';
    ok($ngx->wait_log(qr/called, content-length='26'/, 5), 'called, with the declared length');
    ok($ngx->wait_log(qr/first message: b'0123456789abcdef' more_body=True/, 5),
        'the first message holds the 16 bytes sent, more_body while the client holds back the rest');
    print $s 'ghijklmnop';
    my ($status, $body) = response($s);
    is($status, 200, 'answered');
    is($body, "26\n", 'the whole body');

    $s = $ngx->client;
    print $s head('/first', 'Transfer-Encoding: chunked') . chunk('x' x 20);
    ok($ngx->wait_log(qr/called, content-length=None/, 5), 'a chunked body: no content-length');
    ok($ngx->wait_log(qr/first message: b'x{20}' more_body=True/, 5), 'the first chunk before the next is sent');
    print $s chunk('y' x 30) . "0\r\n\r\n";
    ($status, $body) = response($s);
    is($body, "50\n", 'then the rest, to the last chunk');
    $ngx->stop;
};

subtest 'a chunked request and its response stream both ways: each piece echoed before the next is sent' => sub {
    my $ngx = start();
    my $s = $ngx->client;
    print $s "POST /echo HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n";
    my $data = '';
    for my $i (1 .. 3) {
        print $s chunk("line $i\n");
        my ($got) = NginxRunner::read_until($s, qr/echo: line $i\n/, 5);
        $data .= $got // '';
        like($data, qr/echo: line $i\n/, "piece $i came back before piece " . ($i + 1) . ' was sent');
    }
    print $s "0\r\n\r\n";
    my ($rest) = NginxRunner::read_until($s, qr/\r\n0\r\n\r\n\z/, 5);
    like($data . ($rest // ''), qr/\r\n0\r\n\r\n\z/, 'the response ends when the body does');
    $ngx->stop;
};

subtest 'Expect: 100-continue as nginx does it' => sub {
    # nginx writes "100 Continue" with one send() it assumes complete.
    plan skip_all => 'nginx fails a short write of 100 Continue (EAGAIN mode)' if $ENV{TEST_NGINX_LD_PRELOAD};
    my $ngx = start();
    my $s = $ngx->client;
    print $s head('/first', 'Content-Length: 20', 'Expect: 100-continue');
    my ($interim) = NginxRunner::read_until($s, qr/\r\n\r\n/, 5);
    like($interim, qr{\AHTTP/1\.1 100 Continue\r\n}, '100 Continue before the body');
    print $s 'z' x 20;
    my ($status, $body) = response($s);
    is($body, "20\n", 'then the body reaches the app');
    $ngx->stop;
};

subtest 'HTTP/2 bodies, with and without a length' => sub {
    plan skip_all => 'curl is not installed' if system('curl --version >/dev/null 2>&1') != 0;
    my $ngx = start(listen_opts => '', server => "http2 on; $SERVER");
    my $file = "$ngx->{root}/body";
    open my $f, '>', $file or die $!;
    my $sha = Digest::SHA->new(256);
    numbered_mib(20, $f, $sha);
    close $f;
    my $url = "http://127.0.0.1:$ngx->{h2_port}/sha256";
    my $digest = $sha->hexdigest;
    my $sized = `curl -s -m 30 --http2-prior-knowledge --data-binary \@$file $url`;
    like($sized, qr/^$digest ${\ (20 * $MiB)} /, 'with Content-Length: whole, byte for byte');
    my $streamed = `curl -s -m 30 --http2-prior-knowledge -T - $url < $file`;
    like($streamed, qr/^$digest ${\ (20 * $MiB)} /, 'without (DATA frames to END_STREAM): whole');
    $ngx->stop;
};

subtest 'backpressure: an app slower than its client holds the upload back, not the worker' => sub {
    my $ngx = start();
    my (undef, $rss0) = response($ngx->get('/rss'));
    chomp $rss0;
    my $s = $ngx->client;
    print $s head('/slow', 'Content-Length: ' . (24 * $MiB));
    my $sha = Digest::SHA->new(256);
    numbered_mib(24, $s, $sha);
    my ($status, $body) = response($s, 60);
    is($status, 200, 'answered');
    my ($digest, $read, $peak, $largest) = split ' ', $body;
    is($read, 24 * $MiB, 'the whole body');
    is($digest, $sha->hexdigest, 'byte for byte');
    cmp_ok($largest, '<=', 65536, "no message over 64 KiB ($largest bytes at most)");
    my $growth = ($peak - $rss0) / $MiB;
    cmp_ok($growth, '<', 8, sprintf('the worker grew by %.1f MiB while the app took 24 MiB, 10 ms a message', $growth));
    $ngx->stop;
};

subtest 'a 100 MiB upload: byte for byte, the worker bounded' => sub {
    my $ngx = start();
    my (undef, $rss0) = response($ngx->get('/rss'));
    chomp $rss0;
    my $s = $ngx->client;
    print $s head('/sha256', 'Content-Length: ' . (100 * $MiB));
    my $sha = Digest::SHA->new(256);
    numbered_mib(100, $s, $sha);
    my ($status, $body) = response($s, 60);
    my ($digest, $read, $peak) = split ' ', $body;
    is($read, 100 * $MiB, 'the whole body');
    is($digest, $sha->hexdigest, 'byte for byte');
    my $growth = ($peak - $rss0) / $MiB;
    cmp_ok($growth, '<', 8, sprintf('the worker grew by %.1f MiB', $growth));
    $ngx->stop;
};

subtest 'waiting for the client is not the app\'s time: a body slower than wsgi_read_timeout is read whole' => sub {
    my $ngx = start();
    my $s = $ngx->client;
    print $s head('/patient', 'Content-Length: 40');
    for my $i (1 .. 4) {
        select(undef, undef, undef, 0.6);    # 2.4 s in all, each gap under client_body_timeout
        print $s 'p' x 10;
    }
    my ($status, $body) = response($s);
    is($status, 200, 'answered 200 after 2.4 s under wsgi_read_timeout 1s');
    like($body, qr/ 40 /, 'the whole body');
    unlike($ngx->error_log, qr/ReadTimeout|wsgi_read_timeout/, 'no timeout was reported');
    $ngx->stop;
};

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

subtest 'an app that answers without reading the body: answered, the rest discarded' => sub {
    my $ngx = start();
    my $s = $ngx->client;
    print $s head('/ignores', 'Content-Length: ' . (50 * $MiB));
    print $s 'i' x (4 * $MiB);    # no more: the answer comes anyway
    my ($status, $body) = response($s, 10);
    is($status, 200, 'answered while the client still had 46 MiB to send');
    like($body, qr/^\d+\n\z/, 'the app\'s answer');
    $ngx->stop;
};

# The faults: each ends the request with nginx's code and cancels the app's
# task, is said in error_log, and the worker serves on.
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
    ok($ngx->wait_log(qr/asgi: reading the request body for the app failed: the body is larger than client_max_body_size; the app's task is cancelled, answering 413/, 5),
        'the module says why');
    ok($ngx->wait_log(qr/the reader's task was cancelled after \d+ bytes/, 5), 'the task was cancelled');

    # client_body_timeout (1s): the client stops sending.
    truncate "$ngx->{root}/logs/error.log", 0;
    $s = $ngx->client;
    print $s head('/reader', 'Content-Length: 50000') . ('c' x 1000);
    my ($data) = NginxRunner::read_until($s, qr/\A(?!)/, 10);
    is($data, '', 'the connection is closed without a response (408 in the access log, as nginx does)');
    ok($ngx->wait_log(qr/failed: the client sent nothing within client_body_timeout; the app's task is cancelled, answering 408/, 5),
        'the module says why');
    ok($ngx->wait_log(qr/the reader's task was cancelled after 1000 bytes/, 5), 'the task was cancelled');

    # The client leaves mid-body.
    truncate "$ngx->{root}/logs/error.log", 0;
    $s = $ngx->client;
    print $s head('/reader', 'Content-Length: 50000') . ('d' x 1000);
    ok($ngx->wait_log(qr/the reader is called/, 5), 'the task runs');
    close $s;
    ok($ngx->wait_log(qr/failed: the client closed the connection before the body's end; the app's task is cancelled, the request ends/, 5),
        'the module says why');
    ok($ngx->wait_log(qr/the reader's task was cancelled after 1000 bytes/, 5), 'the task was cancelled');
    unlike($ngx->error_log, qr/Traceback/, 'no traceback');

    my @codes = access_log($ngx) =~ m{"POST /reader HTTP/1\.1" (\d{3})}g;
    is("@codes", '413 408 499', 'the access log has 413, 408 and 499');
    my ($status2, $body) = response($ngx->get('/ignores'));
    is($body, "$pid\n", 'the same worker serves on');
    $ngx->stop;
};

done_testing;

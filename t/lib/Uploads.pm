package Uploads;

# What t/018-uploads.t (WSGI in thread mode) and t/030-asgi-uploads.t (ASGI)
# share of a body read as it arrives (wsgi_request_buffering off): the
# client's side of the requests, and the cases whose apps answer alike.
# Each case takes `start`, a sub that starts nginx with its file's
# configuration (its arguments go to NginxRunner->new); the apps' routes
# have the same names in both files.

use strict;
use warnings;
use Exporter 'import';
use Test::More;
use Digest::SHA;
use NginxRunner;

our @EXPORT_OK = qw(head chunk numbered_mib called_before_the_body echo_both_ways expect_continue
    http2_bodies bounded_upload patient answers_without_reading);

my $MiB = 1 << 20;

# A POST's head with "Connection: close" and @headers.
sub head {
    my ($path, @headers) = @_;
    return "POST $path HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n"
        . join('', map { "$_\r\n" } @headers) . "\r\n";
}

sub chunk { my ($data) = @_; return sprintf("%x\r\n%s\r\n", length $data, $data) }

# Writes $n MiB of numbered words to $out, adding them to $sha.
sub numbered_mib {
    my ($n, $out, $sha) = @_;
    for my $i (0 .. $n - 1) {
        my $piece = pack('N', $i) x ($MiB / 4);
        $sha->add($piece);
        print $out $piece;
    }
}

# /first says in error_log when it is called and what its first read
# gave; %said: what error_log says of each (sized_call, sized_first,
# chunked_call, chunked_first: [regex, test name] each).
sub called_before_the_body {
    my ($start, $what, %said) = @_;
    subtest $what => sub {
        my $ngx = $start->();
        my $s = $ngx->client;
        print $s head('/first', 'Content-Length: 26') . '0123456789abcdef';
        ok($ngx->wait_log($said{sized_call}[0], 5), $said{sized_call}[1]);
        ok($ngx->wait_log($said{sized_first}[0], 5), $said{sized_first}[1]);
        print $s 'ghijklmnop';
        my ($status, $body) = NginxRunner::response($s);
        is($status, 200, 'answered');
        is($body, "26\n", 'the whole body');

        $s = $ngx->client;
        print $s head('/first', 'Transfer-Encoding: chunked') . chunk('x' x 20);
        ok($ngx->wait_log($said{chunked_call}[0], 5), $said{chunked_call}[1]);
        ok($ngx->wait_log($said{chunked_first}[0], 5), $said{chunked_first}[1]);
        print $s chunk('y' x 30) . "0\r\n\r\n";
        ($status, $body) = NginxRunner::response($s);
        is($body, "50\n", 'then the rest, to the last chunk');
        $ngx->stop;
    };
}

sub echo_both_ways {
    my ($start) = @_;
    subtest 'a chunked request and its response stream both ways: each line echoed before the next is sent' => sub {
        my $ngx = $start->();
        my $s = $ngx->client;
        print $s "POST /echo HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n";
        my $data = '';
        for my $i (1 .. 3) {
            print $s chunk("line $i\n");
            my ($got) = NginxRunner::read_until($s, qr/echo: line $i\n/, 5);
            $data .= $got // '';
            like($data, qr/echo: line $i\n/, "line $i came back before line " . ($i + 1) . ' was sent');
        }
        print $s "0\r\n\r\n";
        my ($rest) = NginxRunner::read_until($s, qr/\r\n0\r\n\r\n\z/, 5);
        like($data . ($rest // ''), qr/\r\n0\r\n\r\n\z/, 'the response ends when the body does');
        $ngx->stop;
    };
}

sub expect_continue {
    my ($start) = @_;
    subtest 'Expect: 100-continue as nginx does it' => sub {
        # nginx writes "100 Continue" with one send() it assumes complete.
        plan skip_all => 'nginx fails a short write of 100 Continue (EAGAIN mode)' if $ENV{TEST_NGINX_LD_PRELOAD};
        my $ngx = $start->();
        my $s = $ngx->client;
        print $s head('/first', 'Content-Length: 20', 'Expect: 100-continue');
        my ($interim) = NginxRunner::read_until($s, qr/\r\n\r\n/, 5);
        like($interim, qr{\AHTTP/1\.1 100 Continue\r\n}, '100 Continue before the body');
        print $s 'z' x 20;
        my ($status, $body) = NginxRunner::response($s);
        is($body, "20\n", 'then the body reaches the app');
        $ngx->stop;
    };
}

# $server: the file's server block, which gets `http2 on;`.
sub http2_bodies {
    my ($start, $server) = @_;
    subtest 'HTTP/2 bodies, with and without a length' => sub {
        plan skip_all => 'curl is not installed' if system('curl --version >/dev/null 2>&1') != 0;
        my $ngx = $start->(listen_opts => '', server => "http2 on; $server");
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
}

# An upload of $mib MiB to $path, whose app answers "digest size peak-rss
# ...": whole, byte for byte, the worker within 8 MiB of its size before.
# Returns the answer's further fields.
sub bounded_upload {
    my ($start, $path, $mib, $what) = @_;
    my @more;
    subtest $what => sub {
        my $ngx = $start->();
        my (undef, $rss0) = NginxRunner::response($ngx->get('/rss'));
        chomp $rss0;
        my $s = $ngx->client;
        print $s head($path, 'Content-Length: ' . ($mib * $MiB));
        my $sha = Digest::SHA->new(256);
        numbered_mib($mib, $s, $sha);
        my ($status, $body) = NginxRunner::response($s, 60);
        is($status, 200, 'answered');
        my ($digest, $read, $peak);
        ($digest, $read, $peak, @more) = split ' ', $body;
        is($read, $mib * $MiB, 'the whole body');
        is($digest, $sha->hexdigest, 'byte for byte');
        my $growth = ($peak - $rss0) / $MiB;
        cmp_ok($growth, '<', 8, sprintf('the worker grew by %.1f MiB while the app read %d MiB', $growth, $mib));
        $ngx->stop;
    };
    return @more;
}

# $timeout_said: what error_log would say of a timeout.
sub patient {
    my ($start, $timeout_said) = @_;
    subtest 'waiting for the client is not the app\'s time: a body slower than wsgi_read_timeout is read whole' => sub {
        my $ngx = $start->();
        my $s = $ngx->client;
        print $s head('/patient', 'Content-Length: 40');
        for my $i (1 .. 4) {
            select(undef, undef, undef, 0.6);    # 2.4 s in all, each gap under client_body_timeout
            print $s 'p' x 10;
        }
        my ($status, $body) = NginxRunner::response($s);
        is($status, 200, 'answered 200 after 2.4 s under wsgi_read_timeout 1s');
        like($body, qr/ 40 /, 'the whole body');
        unlike($ngx->error_log, $timeout_said, 'no timeout was reported');
        $ngx->stop;
    };
}

sub answers_without_reading {
    my ($start) = @_;
    subtest 'an app that answers without reading the body: answered, the rest discarded' => sub {
        my $ngx = $start->();
        my $s = $ngx->client;
        print $s head('/ignores', 'Content-Length: ' . (50 * $MiB));
        print $s 'i' x (4 * $MiB);    # no more: the answer comes anyway
        my ($status, $body) = NginxRunner::response($s, 10);
        is($status, 200, 'answered while the client still had 46 MiB to send');
        like($body, qr/^\d+\n\z/, 'the app\'s answer');
        $ngx->stop;
    };
}

1;

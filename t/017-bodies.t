# Request bodies of any size: a body nginx wrote to its temp file is read
# from the file as the app asks, so the worker's memory does not grow with
# it (inline and in thread mode).
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use NginxRunner;
use Test::More;
use Digest::SHA;
use Time::HiRes ();

delete $ENV{TEST_NGINX_WSGI_THREADS};

my $MiB = 1 << 20;

sub response { NginxRunner::response($_[0], $_[1] // 60) }

for my $mode ('inline', 'threads') {
    my $threads = $mode eq 'threads' ? 'wsgi_threads 2;' : '';
    subtest "$mode: a 100 MiB upload read in 64 KiB pieces leaves the worker's memory as it was" => sub {
        my $ngx = NginxRunner->new(http => $threads, server => '
            client_max_body_size 200m;
            location /rss { wsgi_pass bodies:rss; }
            location /sha256 { wsgi_pass bodies:sha256; }');
        my ($status0, $rss0) = response($ngx->get('/rss'));
        is($status0, 200, 'the RSS before');
        chomp $rss0;

        my $size = 100 * $MiB;
        my $s = $ngx->client;
        print $s "POST /sha256 HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n"
            . "Content-Length: $size\r\n\r\n";
        my $sha = Digest::SHA->new(256);
        for my $i (0 .. 99) {
            my $piece = pack('N', $i) x ($MiB / 4);
            $sha->add($piece);
            print $s $piece;
        }
        my ($status, $body) = response($s);
        is($status, 200, 'answered');
        my ($digest, $read, $peak) = split ' ', $body;
        is($read, $size, 'the app read the whole body');
        is($digest, $sha->hexdigest, 'byte for byte');
        my $growth = ($peak - $rss0) / $MiB;
        cmp_ok($growth, '<', 32, sprintf('the worker grew by %.1f MiB, not by the body', $growth));
        $ngx->stop;
    };
}

# Bad input never costs memory: nginx answers it with its own codes
# before the app runs, and the worker stays as it was.
for my $mode ('inline', 'threads') {
    my $threads = $mode eq 'threads' ? 'wsgi_threads 2;' : '';
    my $server = '
        client_body_timeout 1s;
        location /rss { wsgi_pass bodies:rss; }
        location /limited { client_max_body_size 1m; wsgi_pass bodies:logged; }
        location /unlimited { client_max_body_size 0; wsgi_pass bodies:logged; }';

    subtest "$mode: bad bodies end with nginx's codes, the app never runs, the worker stays as it was" => sub {
        my $ngx = NginxRunner->new(http => $threads, server => $server);
        my (undef, $rss0) = response($ngx->get('/rss'));

        my $s = $ngx->client;
        print $s "POST /limited HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n"
            . "Content-Length: 10737418240\r\n\r\n0123456789";
        my ($status) = response($s);
        is($status, 413, 'a declared 10 GiB over client_max_body_size: 413 at once');

        $s = $ngx->client;
        print $s "POST /unlimited HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n"
            . "Content-Length: 10737418240\r\n\r\n0123456789";
        my $start = Time::HiRes::time();
        my ($data) = NginxRunner::read_until($s, qr/\A(?!)/, 10);
        my $took = Time::HiRes::time() - $start;
        is($data, '', 'a declared 10 GiB (no limit) that stops after 10 bytes: closed at client_body_timeout (408 in the access log, as nginx does)');
        cmp_ok($took, '<', 5, sprintf('after %.1f s', $took));

        $s = $ngx->client;
        print $s "POST /unlimited HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n"
            . "Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\nzz\r\nbogus\r\n0\r\n\r\n";
        ($status) = response($s);
        is($status, 400, 'a chunk size that is not hexadecimal: 400');

        my (undef, $rss1) = response($ngx->get('/rss'));
        my $growth = ($rss1 - $rss0) / $MiB;
        cmp_ok($growth, '<', 2, sprintf('the worker grew by %.1f MiB', $growth));
        ok($ngx->wait_log(qr/client intended to send too large body/, 2), "nginx's 413 line");
        ok($ngx->wait_log(qr/client sent invalid chunked body/, 2), "nginx's 400 line");
        unlike($ngx->error_log, qr/the app ran/, 'the app never ran');
        $ngx->stop;
    };

    subtest "$mode: a body in 200,000 chunks of 5 bytes reaches the app whole, the worker bounded" => sub {
        my $ngx = NginxRunner->new(http => $threads, server => $server);
        my (undef, $rss0) = response($ngx->get('/rss'));
        my $s = $ngx->client;
        print $s "POST /unlimited HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n"
            . "Transfer-Encoding: chunked\r\n\r\n";
        my $sha = Digest::SHA->new(256);
        for my $batch (0 .. 199) {
            my $wire = '';
            for my $i (0 .. 999) {
                my $piece = sprintf('%05d', ($batch * 1000 + $i) % 100000);
                $sha->add($piece);
                $wire .= "5\r\n$piece\r\n";
            }
            print $s $wire;
        }
        print $s "0\r\n\r\n";
        my ($status, $body) = response($s);
        is($status, 200, 'answered');
        my ($digest, $read, $peak) = split ' ', $body;
        is($read, 1_000_000, 'the whole body');
        is($digest, $sha->hexdigest, 'byte for byte');
        my $growth = ($peak - $rss0) / $MiB;
        cmp_ok($growth, '<', 8, sprintf('the worker grew by %.1f MiB', $growth));
        $ngx->stop;
    };
}

done_testing;

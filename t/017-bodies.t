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

delete $ENV{TEST_NGINX_WSGI_THREADS};

my $MiB = 1 << 20;

# Reads one "Connection: close" response; (status, body).
sub response {
    my ($s) = @_;
    my ($data) = NginxRunner::read_until($s, qr/\A(?!)/, 60);
    my ($status) = $data =~ m{\AHTTP/1\.1 (\d{3})};
    my (undef, $body) = split /\r\n\r\n/, $data, 2;
    return ($status // 0, $body // '');
}

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

done_testing;

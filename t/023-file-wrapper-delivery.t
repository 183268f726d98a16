# wsgi.file_wrapper's files as nginx delivers them: a slow reader of a
# large file does not hold the app's thread (thread mode); a client that
# leaves mid-file frees the file; through gzip and over HTTP/2, whole;
# a range over HTTP/2. (What the response holds: t/022.)
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use NginxRunner;
use Test::More;
use Time::HiRes ();
use Digest::SHA ();

delete $ENV{TEST_NGINX_WSGI_THREADS};

my $SIZE = 20 << 20;

sub start {
    my (%args) = @_;
    my $ngx = NginxRunner->new(%args, server => "
        root html;
        $args{threads}
        $args{extra}
        location /f { wsgi_pass files:serve; }
        location /hello { wsgi_pass basics:hello; }");
    mkdir "$ngx->{root}/html";
    return $ngx;
}

# The descriptors the worker has open on the file NAME under html/.
sub open_files {
    my ($ngx, $name) = @_;
    my ($pid) = $ngx->worker_pids;
    return grep { (readlink($_) // '') =~ m{/html/\Q$name\E\z} } glob "/proc/$pid/fd/*";
}

sub pattern_sha {
    my ($size) = @_;
    my $sha = Digest::SHA->new(256);
    my $block = join('', map { chr } 0 .. 255) x 4096;   # 1 MiB
    my $left = $size;
    while ($left > 0) {
        my $n = $left < length($block) ? $left : length($block);
        $sha->add(substr($block, 0, $n));
        $left -= $n;
    }
    return $sha->hexdigest;
}

subtest 'thread mode: a slow reader of a 20 MiB file does not hold the one thread' => sub {
    my $ngx = start(threads => 'wsgi_threads 1;', extra => 'sendfile on;', listen_opts => 'sndbuf=32k');
    my $slow = $ngx->client(rcvbuf => 16384);
    print $slow "GET /f?name=big.bin&size=$SIZE HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";
    my $first = NginxRunner::read_some($slow, 5, 4096);
    like($first // '', qr{\AHTTP/1\.1 200}, 'the slow reader has its head');
    ok($ngx->wait_log(qr/files: close\(\) called/, 5), "the app's file is closed once nginx has the file");

    my $start = Time::HiRes::time();
    my ($data) = NginxRunner::read_until($ngx->get('/hello'), qr/Hello/, 5);
    my $took = Time::HiRes::time() - $start;
    like($data, qr/Hello/, 'a second request to the one-thread pool is answered');
    cmp_ok($took, '<', 1, sprintf('within a second (%.2f s)', $took));

    my $sha = Digest::SHA->new(256);
    my (undef, $body) = split /\r\n\r\n/, $first, 2;
    $sha->add($body);
    my $got = length $body;
    while (defined(my $chunk = NginxRunner::read_some($slow, 10, 1 << 20))) {
        last if $chunk eq '';
        $sha->add($chunk);
        $got += length $chunk;
    }
    is($got, $SIZE, 'the slow reader gets all of it');
    is($sha->hexdigest, pattern_sha($SIZE), 'byte for byte');
    $ngx->stop;
};

for my $mode (['inline', ''], ['thread mode', 'wsgi_threads 2;']) {
    my ($what, $threads) = @$mode;
    subtest "$what: a client that leaves mid-file: the file is let go, the worker serves on" => sub {
        my $ngx = start(threads => $threads, extra => 'sendfile on;', listen_opts => 'sndbuf=32k');
        my $s = $ngx->client(rcvbuf => 16384);
        print $s "GET /f?name=big.bin&size=$SIZE HTTP/1.1\r\nHost: localhost\r\n\r\n";
        like(NginxRunner::read_some($s, 5, 4096) // '', qr{\AHTTP/1\.1 200}, 'the file starts');
        ok($ngx->wait_log(qr/files: close\(\) called/, 5), "the app's close() ran");
        is(scalar open_files($ngx, 'big.bin'), 1, 'nginx has the file open while it sends it');
        close $s;
        my $deadline = Time::HiRes::time() + 10;
        Time::HiRes::sleep(0.1) while open_files($ngx, 'big.bin') && Time::HiRes::time() < $deadline;
        is(scalar open_files($ngx, 'big.bin'), 0, 'and closes it once the client has left (send_timeout not needed)');
        my ($data) = NginxRunner::read_until($ngx->get('/hello'), qr/Hello/, 5);
        like($data, qr/Hello/, 'the worker serves on');
        $ngx->stop;
    };
}

subtest 'through gzip and over HTTP/2, whole; a range over HTTP/2' => sub {
    plan skip_all => 'curl is not installed' if system('curl --version >/dev/null 2>&1') != 0;
    my $ngx = start(threads => '', extra => 'http2 on; gzip on; gzip_types application/octet-stream;');
    my $url = "http://127.0.0.1:$ngx->{port}/f?name=mid.bin&size=3000000";
    (my $h2_url = $url) =~ s/:$ngx->{port}/:$ngx->{h2_port}/;
    my $want = pattern_sha(3_000_000);
    for my $case (['HTTP/1.1, gzip', '--http1.1 --compressed'], ['HTTP/2', '--http2-prior-knowledge'],
                  ['HTTP/2, gzip', '--http2-prior-knowledge --compressed']) {
        my ($what, $opts) = @$case;
        my $to = $opts =~ /http2/ ? $h2_url : $url;
        like(`curl -s -m 30 $opts '$to' | sha256sum`, qr/^$want /, "$what: every byte");
    }
    my $headers = `curl -s -m 30 -D - -o /dev/null --compressed '$url'`;
    like($headers, qr/Content-Encoding: gzip/i, 'gzip compressed it');
    my $range = `curl -s -m 30 --http2-prior-knowledge -r 1000-1003 '$h2_url' | od -An -tu1`;
    like($range, qr/^\s*232\s+233\s+234\s+235\s*$/, 'a range over HTTP/2: bytes 1000 to 1003');
    $ngx->stop;
};

done_testing();

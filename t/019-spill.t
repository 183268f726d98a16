# Thread mode: what a slow client cannot take yet goes, past the hand-off's
# window, to a temp file, so the app's thread is free once the app has
# finished (wsgi_max_temp_file_size, wsgi_temp_path).
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use NginxRunner;
use NginxCompat qw(test_hooks);
use Test::More;
use Time::HiRes ();
use Digest::SHA ();

delete $ENV{TEST_NGINX_WSGI_THREADS};

my $MiB = 1 << 20;
my $CHUNK = 65536;
my $BIG = 320 * $CHUNK;

# One pool of one thread for every location (a server-level wsgi_threads),
# and a temp path the test can look into.
sub start {
    my (%args) = @_;
    my $temp = ($ENV{PWD} // '.') . '/t/servroot_runner/wsgi_temp';
    my $extra = $args{extra} // '';
    my $ngx = NginxRunner->new(server => "
        wsgi_threads 1;
        wsgi_temp_path $temp 1 2;
        $extra
        location /big { wsgi_pass spill:big; }
        location /hello { wsgi_pass spill:hello; }
        location /flushed { wsgi_pass spill:flushed; }", listen_opts => 'sndbuf=32k');
    $ngx->{temp} = $temp;
    return $ngx;
}

# The temp files the worker has open (their names are removed at once).
sub open_temp_files {
    my ($ngx) = @_;
    my ($pid) = $ngx->worker_pids;
    my @open;
    for my $fd (glob "/proc/$pid/fd/*") {
        my $target = readlink($fd) // next;
        push @open, $target if index($target, $ngx->{temp}) == 0;
    }
    return @open;
}

sub files_in {
    my ($dir) = @_;
    return grep { -f } split /\n/, `find $dir -type f 2>/dev/null`;
}

# Reads the rest of a response whose first bytes were `$got`, until its
# body has $BIG bytes or the connection closes; the body.
sub rest_of_big {
    my ($s, $got, $timeout) = @_;
    my $deadline = Time::HiRes::time() + $timeout;
    my $data = $got;
    while (Time::HiRes::time() < $deadline) {
        my ($head, $body) = split /\r\n\r\n/, $data, 2;
        return $body if defined $body && length($body) >= $BIG;
        my $chunk = NginxRunner::read_some($s, 1, 1 << 20);
        next if !defined $chunk;
        last if $chunk eq '';
        $data .= $chunk;
    }
    my (undef, $body) = split /\r\n\r\n/, $data, 2;
    return $body // '';
}

sub in_order {
    my ($body) = @_;
    return 0 if length($body) != $BIG;
    for my $i (0 .. 319) {
        return 0 if substr($body, $i * $CHUNK, $CHUNK) ne pack('N', $i) x ($CHUNK / 4);
    }
    return 1;
}

subtest 'a slow reader of 20 MiB does not hold the thread: its output waits in a temp file' => sub {
    my $ngx = start();
    my $slow = $ngx->client(rcvbuf => 16384);
    print $slow "GET /big HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";
    my $first = NginxRunner::read_some($slow, 5, 4096);
    like($first, qr{\AHTTP/1\.1 200}, 'the slow reader has its head');
    ok($ngx->wait_log(qr/the app produced all of it/, 5), 'the app produced all 20 MiB while its client read 4 KiB');

    my $start = Time::HiRes::time();
    my $s = $ngx->get('/hello');
    my ($data) = NginxRunner::read_until($s, qr/hello\n/, 5);
    my $took = Time::HiRes::time() - $start;
    like($data, qr/hello\n/, 'a second request to the one-thread pool is answered');
    cmp_ok($took, '<', 1, sprintf('within a second (%.2f s)', $took));

    my @open = open_temp_files($ngx);
    is(scalar @open, 1, 'the slow response has its temp file open');
    like($open[0] // '', qr{ \(deleted\)\z}, 'and the file has no name');
    is(scalar files_in($ngx->{temp}), 0, 'nothing is left in wsgi_temp_path');

    ok(in_order(rest_of_big($slow, $first, 30)), 'the slow reader gets every byte, in order');
    close $slow;
    ok(wait_for(sub { !open_temp_files($ngx) }, 5), 'the temp file is closed when the response ends');
    $ngx->stop;
};

subtest 'spilled output through gzip, chunked and over HTTP/2, to slow readers: whole and in order' => sub {
    plan skip_all => 'curl is not installed' if system('curl --version >/dev/null 2>&1') != 0;
    my $ngx = start(extra => 'http2 on; gzip on; gzip_types application/octet-stream; sendfile on;');
    my $want = Digest::SHA::sha256_hex(join '', map { pack('N', $_) x ($CHUNK / 4) } 0 .. 319);
    for my $case (['HTTP/1.1, gzip (chunked)', '--http1.1 --compressed'], ['HTTP/2', '--http2-prior-knowledge'],
                  ['HTTP/1.1, sendfile', '--http1.1']) {
        my ($what, $opts) = @$case;
        my $port = $opts =~ /http2/ ? $ngx->{h2_port} : $ngx->{port};
        my $got = `curl -s -m 60 --limit-rate 4M $opts http://127.0.0.1:$port/big | sha256sum`;
        like($got, qr/^$want /, "$what: every byte, in order");
    }
    ok($ngx->wait_log(qr/the app produced all of it/, 1), 'the app ran ahead of the slow readers');
    is(scalar open_temp_files($ngx), 0, 'no temp file is left open');
    $ngx->stop;
};

subtest 'a flushed chunk arrives at once while earlier output sits in the temp file' => sub {
    my $ngx = start();
    my $s = $ngx->client(rcvbuf => 16384);
    my $start = Time::HiRes::time();
    print $s "GET /flushed HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";
    select(undef, undef, undef, 0.5);
    ok(scalar open_temp_files($ngx), 'the 4 MiB before the mark went to the temp file');
    my ($data) = NginxRunner::read_until($s, qr/MARK/, 5);
    my $took = Time::HiRes::time() - $start;
    like($data, qr/MARK/, 'the flushed mark arrives');
    cmp_ok($took, '<', 1.8, sprintf('after %.2f s, while the app still sleeps (2 s)', $took));
    my ($end) = NginxRunner::read_until($s, qr/END/, 5);
    like($end, qr/END/, 'then the rest');
    $ngx->stop;
};

for my $case (['0', 'off'], ['1m', 'at its limit (1m)']) {
    my ($size, $what) = @$case;
    subtest "wsgi_max_temp_file_size $size: spilling $what, the thread waits for the client as before" => sub {
        my $ngx = start(extra => "wsgi_max_temp_file_size $size;");
        my $slow = $ngx->client(rcvbuf => 16384);
        print $slow "GET /big HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";
        my $first = NginxRunner::read_some($slow, 5, 4096);
        my $s = $ngx->get('/hello');
        my $early = NginxRunner::read_some($s, 1);
        ok(!defined $early, 'the second request waits while the slow reader holds the only thread');
        ok(in_order(rest_of_big($slow, $first, 30)), 'the slow reader gets every byte, in order');
        my ($data) = NginxRunner::read_until($s, qr/hello\n/, 5);
        like($data, qr/hello\n/, 'then the second request is answered');
        $ngx->stop;
    };
}

subtest 'a client that leaves mid-spill frees the file' => sub {
    my $ngx = start();
    my $slow = $ngx->client(rcvbuf => 16384);
    print $slow "GET /big HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";
    NginxRunner::read_some($slow, 5, 4096);
    ok(wait_for(sub { scalar open_temp_files($ngx) }, 5), 'the response spills');
    close $slow;
    ok(wait_for(sub { !open_temp_files($ngx) }, 5), 'the file is closed once the client has left');
    my $s = $ngx->get('/hello');
    my ($data) = NginxRunner::read_until($s, qr/hello\n/, 5);
    like($data, qr/hello\n/, 'the worker serves on');
    $ngx->stop;
};

subtest 'a full disk: the response is aborted, logged, the worker serves on' => sub {
    plan skip_all => "a full disk is the test build's hook (wsgi_test_hook)" unless test_hooks();
    my $ngx = start(extra => 'wsgi_test_hook spill_write_fails;');
    my ($pid) = $ngx->worker_pids;
    my $slow = $ngx->client(rcvbuf => 16384);
    print $slow "GET /big HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";
    my $first = NginxRunner::read_some($slow, 5, 4096);
    ok($ngx->wait_log(qr/\[error\].*wsgi: writing the response to the temp file "[^"]+" failed: No space left on device.*; aborting the response/, 5),
        'error_log says why');
    my $body = rest_of_big($slow, $first, 10);
    cmp_ok(length($body), '<', $BIG, 'the client gets a response cut short (the connection closed before its Content-Length)');
    my $s = $ngx->get('/hello');
    my ($data) = NginxRunner::read_until($s, qr/hello\n/, 5);
    like($data, qr/hello\n/, 'the worker serves on');
    is(($ngx->worker_pids)[0], $pid, 'the same worker');
    $ngx->stop;
};

sub wait_for {
    my ($cond, $timeout) = @_;
    my $deadline = Time::HiRes::time() + $timeout;
    while (Time::HiRes::time() < $deadline) {
        return 1 if $cond->();
        select(undef, undef, undef, 0.05);
    }
    return $cond->() ? 1 : 0;
}

done_testing;

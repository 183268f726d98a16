# ASGI on nginx's event loop (issue 20): requests that await run side by
# side with each other and with nginx's own work; a slow client suspends
# the app's send() (nginx holds a bounded amount); a client that leaves
# cancels the app's task; trailers reach the client; a graceful quit lets
# a stream end whole and runs lifespan.shutdown, as a reload does; an app that blocks the
# loop stalls the worker, as documented, until wsgi_read_timeout
# interrupts it (504); an idle worker uses no CPU; httpx2.AsyncClient,
# asyncio streams and threads work from an app;
# wsgi_status counts ASGI requests.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use NginxRunner;
use Test::More;
use Time::HiRes qw(time sleep);

delete $ENV{TEST_NGINX_WSGI_THREADS};
my $eagain = $ENV{TEST_NGINX_LD_PRELOAD};

my $asgi = 'location /a/ { asgi_pass asgi_basics:app; }';

# GET $path on a new connection; (status, body, seconds).
sub fetch {
    my ($ngx, $path, $timeout) = @_;
    my $start = time;
    my ($status, $body) = NginxRunner::response($ngx->get($path), $timeout // 10);
    return ($status, $body, time - $start);
}

subtest 'ten requests that await 0.5 s each are answered together; a static file is served meanwhile' => sub {
    my $ngx = NginxRunner->new(server => "$asgi location /static/ { alias $ENV{TEST_NGINX_APPS}/; }");
    my $start = time;
    my @socks = map { $ngx->get('/a/sleep?0.5') } 1 .. 10;
    sleep 0.1;
    my ($status, $body, $took) = fetch($ngx, '/static/asgi_basics.py');
    is($status, 200, 'the static file: 200');
    cmp_ok($took, '<', 0.3, "... at once ($took s), while the apps await");
    for my $s (@socks) {
        my ($st, $b) = NginxRunner::response($s, 10);
        is("$st $b", "200 slept\n", 'an awaiting request: answered');
    }
    my $all = time - $start;
    cmp_ok($all, '<', $eagain ? 3 : 1.5, "all ten in $all s, not 5");
    unlike($ngx->error_log, qr/\[(alert|error)\]/, 'no error');
};

subtest 'a client that does not read suspends the app in send(); nginx holds a bounded amount; then every byte arrives' => sub {
    plan skip_all => 'EAGAIN mode: a byte per write' if $eagain;
    my $ngx = NginxRunner->new(server => $asgi, listen_opts => 'sndbuf=16k');
    my $s = $ngx->client(rcvbuf => 16384);
    print $s "GET /a/slow_client HTTP/1.0\r\nHost: localhost\r\n\r\n";
    sleep 1;
    my (undef, $pieces) = fetch($ngx, '/a/progress');
    cmp_ok($pieces, '<=', 8, "after 1 s unread, the app has sent $pieces of 128 pieces of 64 KiB (it waits in send())");
    my ($data) = NginxRunner::read_until($s, qr/\A(?!)/, 20);
    my (undef, $body) = split /\r\n\r\n/, $data, 2;
    is(length($body), 128 * 65536, 'then all 8 MiB arrive');
    my (undef, $events) = fetch($ngx, '/a/events');
    like($events, qr/\["slow_client_waited", ([1-9]\d*)\]/, 'sends waited for the client');
};

subtest "a client that leaves while the app awaits: the app's task is cancelled" => sub {
    my $ngx = NginxRunner->new(server => $asgi);
    my $s = $ngx->get('/a/cancelled');
    my ($data) = NginxRunner::read_until($s, qr/first\n/, 5);
    like($data, qr/first\n/, 'the first chunk arrived');
    close $s;
    ok($ngx->wait_log(qr/\[info\] .*asgi: the client connection is gone; cancelling the app's task, client: 127\.0\.0\.1, server: , request: "GET \/a\/cancelled HTTP\/1\.1"/, 5),
        'error_log: the client is gone, the task is cancelled');
    my $events = '';
    for (1 .. 20) {
        (undef, $events) = fetch($ngx, '/a/events');
        last if $events =~ /cancelled/;
        sleep 0.1;
    }
    like($events, qr/\["cancelled", "\/a\/cancelled"\]/, 'the app saw CancelledError');
    unlike($ngx->error_log, qr/\[(alert|error)\]/, 'nothing else logged');
};

subtest 'http.response.trailers after a chunked body (HTTP/1.1)' => sub {
    my $ngx = NginxRunner->new(server => $asgi);
    my ($data) = NginxRunner::read_until($ngx->get('/a/trailers'), qr/\A(?!)/, 10);
    like($data, qr/\r\nTransfer-Encoding: chunked\r\n/, 'chunked');
    like($data, qr/\r\n\r\n5\r\nbody\n\r\n0\r\nx-checksum: abc123\r\n\r\n\z/, 'the body, then the trailer after the last chunk');
};

subtest '... and over HTTP/2: a HEADERS frame after the DATA' => sub {
    plan skip_all => 'nghttp (nghttp2-client) is not installed' if system('nghttp --version >/dev/null 2>&1') != 0;
    my $ngx = NginxRunner->new(listen_opts => '', server => "http2 on; $asgi");
    my $out = `nghttp -v -t 10 http://127.0.0.1:$ngx->{h2_port}/a/trailers 2>&1`;
    like($out, qr/recv DATA frame .*\n(?:.*\n)*?.*recv \(stream_id=\d+\) x-checksum: abc123\n.*recv HEADERS frame [^\n]*\n[^\n]*END_STREAM/,
        'the body, then the trailer in a HEADERS frame that ends the stream') or diag($out);
};

subtest 'libraries that use the running loop: httpx2.AsyncClient, asyncio streams, threads; each fetch served by the same worker meanwhile' => sub {
    # The preload holds every TCP write of the process until nginx's poll()
    # saw the socket writable: the app's own sockets are in asyncio's epoll.
    plan skip_all => "EAGAIN mode: the preload holds the app's own sockets' writes" if $eagain;
    my $python = "$ENV{TEST_NGINX_VENV}/bin/python";
    plan skip_all => "no virtualenv with httpx2 at $ENV{TEST_NGINX_VENV}"
        if system("$python -c 'import httpx2' 2>/dev/null") != 0;
    my $ngx = NginxRunner->new(
        http => "wsgi_python_home $ENV{TEST_NGINX_VENV};",
        server => 'location = /static { return 200 "static\n"; }
                   location /lib { asgi_pass asgi_libraries:app; }');
    my ($status, $body) = fetch($ngx, '/lib');
    is($status, 200, 'answered');
    is($body, "httpx2.AsyncClient: static\nasyncio.open_connection: static\nrun_in_executor: from a thread\n"
        . "asyncio.to_thread: from a thread\nasyncio.wait_for: slept\n", 'each library got its answer')
        or diag($ngx->error_log);
};

subtest 'an app that blocks the loop stalls the worker (documented): a request beside it waits' => sub {
    my $ngx = NginxRunner->new(server => $asgi);
    my $blocking = $ngx->get('/a/blocking?1');
    sleep 0.2;
    my ($status, $body, $took) = fetch($ngx, '/a/hello');
    is($status, 200, 'the other request: 200');
    cmp_ok($took, '>', 0.5, "... only once the blocking call returned ($took s)");
    my ($st) = NginxRunner::response($blocking, 5);
    is($st, 200, 'the blocking request: 200');
};

subtest 'an idle worker with the asyncio loop uses no CPU (no polling), also with an open WebSocket and a task sleeping 30 s' => sub {
    my $ngx = NginxRunner->new(master => 1, server => $asgi);
    my $s = $ngx->get('/a/cancelled');  # its app sleeps 30 s after the first chunk
    my ($data) = NginxRunner::read_until($s, qr/first\n/, 5);
    like($data, qr/first\n/, 'a request awaits');
    my ($worker) = $ngx->worker_pids;
    my $used = NginxRunner::cpu_ticks_over($worker, 2);
    cmp_ok($used, '<=', 2, "$used clock ticks in 2 s");
    close $s;
    $ngx->stop;
};

subtest 'wsgi_status counts ASGI requests by their mode, and their status classes' => sub {
    my $ngx = NginxRunner->new(server => "$asgi location /status { wsgi_status; }");
    fetch($ngx, '/a/hello') for 1 .. 3;
    fetch($ngx, '/a/raises');
    my (undef, $page) = fetch($ngx, '/status?format=json');
    like($page, qr/"requests_total":\{"inline":0,"threads":0,"asgi":4\}/, 'requests_total: 4 asgi');
    like($page, qr/"responses_total":\{[^}]*"2xx":3[^}]*"5xx":1/, '3 2xx, 1 5xx');
    like($page, qr/"app_exceptions_total":1\b/, 'one app exception');
};

subtest "wsgi_read_timeout: an app that blocks the loop gets ReadTimeout (504) and the worker serves on" => sub {
    my $ngx = NginxRunner->new(server => "wsgi_read_timeout 1s; $asgi");
    my ($status, $body, $took) = fetch($ngx, '/a/blocking?5');
    is($status, 504, 'a call blocking 5 s: 504');
    cmp_ok($took, '<', 3.5, "after $took s, not 5");
    like($ngx->error_log, qr/\[error\] .*wsgi: app "asgi_basics:app" did not return within wsgi_read_timeout \(1000 ms\): ReadTimeout is raised in it; the stack of the call/,
        'error_log: the timeout and the stack');
    like($ngx->error_log, qr/asgi_basics\.py", line \d+, in blocking/, 'the stack shows where it blocked');
    my ($st, $b) = fetch($ngx, '/a/hello');
    is("$st $b", "200 hello from asgi\n", 'the same worker serves on');
    unlike($ngx->error_log, qr/\[alert\]/, 'no alert');
};

subtest 'nginx -s quit during a stream: the stream ends whole, lifespan.shutdown runs, the worker exits' => sub {
    my $file = "$ENV{PWD}/t/servroot_runner_shutdown";
    unlink $file;
    my $size = $eagain ? 65536 : 32 << 20;
    my $ngx = NginxRunner->new(master => 1, server => $asgi, main => "env ASGI_SHUTDOWN_FILE=$file;");
    ok($ngx->wait_log(qr/\[notice\] .*asgi: app "asgi_basics:app" started \(lifespan\)/, 5), 'lifespan startup at the worker start');
    my $s = $ngx->get("/a/big?$size", version => '1.0');
    my ($data) = NginxRunner::read_until($s, qr/x{1000}/, 5);
    system($ENV{TEST_NGINX_BINARY}, '-p', "$ngx->{root}/", '-c', "$ngx->{root}/conf/nginx.conf", '-s', 'quit') == 0
        or die 'quit failed';
    my ($rest) = NginxRunner::read_until($s, qr/\A(?!)/, $eagain ? 60 : 20);
    my (undef, $body) = split /\r\n\r\n/, $data . $rest, 2;
    is(length($body // ''), $size, 'every byte of the stream arrived');
    ok($ngx->wait_log(qr/\[notice\] .*asgi: app "asgi_basics:app" stopped \(lifespan\)/, 5), 'lifespan shutdown at the exit');
    ok($ngx->wait_log(qr/\[notice\] .*: exit\n/, 5), 'the worker exited');
    open my $f, '<', $file;
    is(do { local $/; <$f> } // '', "shutdown\n", 'the app ran its shutdown');
    unlike($ngx->error_log, qr/open socket|\[alert\]/, 'no socket left open at exit, no alert');
    $ngx->{stopped} = 1;
    unlink $file;
};

subtest 'nginx -s reload: the old worker runs lifespan.shutdown, the new one lifespan.startup, and serves' => sub {
    my $file = "$ENV{PWD}/t/servroot_runner_shutdown";
    unlink $file;
    my $ngx = NginxRunner->new(master => 1, server => $asgi, main => "env ASGI_SHUTDOWN_FILE=$file;");
    my ($old) = $ngx->worker_pids;
    ok($ngx->wait_log(qr/\[notice\] $old#\d+: asgi: app "asgi_basics:app" started \(lifespan\)/, 5), 'the first worker started the app');
    system($ENV{TEST_NGINX_BINARY}, '-p', "$ngx->{root}/", '-c', "$ngx->{root}/conf/nginx.conf", '-s', 'reload') == 0
        or die 'reload failed';
    ok($ngx->wait_log(qr/\[notice\] $old#\d+: asgi: app "asgi_basics:app" stopped \(lifespan\)/, 10), 'the old worker ran lifespan.shutdown');
    ok($ngx->wait_log(qr/\[notice\] (?!$old#)\d+#\d+: asgi: app "asgi_basics:app" started \(lifespan\)/, 10), 'the new worker ran lifespan.startup');
    open my $f, '<', $file;
    is(do { local $/; <$f> } // '', "shutdown\n", "the app's shutdown ran once");
    my ($status, $body) = fetch($ngx, '/a/hello');
    is("$status $body", "200 hello from asgi\n", 'the new worker serves');
    unlink $file;
};

done_testing;

# WebSocket over HTTP/1.1 for ASGI apps (issue 20), checked with the
# `websockets` client library (t/lib/ws_client.py): the handshake
# (subprotocol, headers), text and binary messages, fragments reassembled,
# ping answered, a 16 MiB message both ways, close codes both ways, the
# refusals (403, the denial response), an app that returns, raises or sends
# a bad message, frames that break RFC 6455 (1002, 1007, 1009), backpressure
# both ways, 1,000 idle connections within 64 MiB, and a graceful quit that
# tells each open WebSocket the server is going away (1001).
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use NginxRunner;
use Test::More;
use Time::HiRes qw(time sleep);

delete $ENV{TEST_NGINX_WSGI_THREADS};
my $eagain = $ENV{TEST_NGINX_LD_PRELOAD};
my $python = "$ENV{TEST_NGINX_VENV}/bin/python";
plan skip_all => "no virtualenv with websockets at $ENV{TEST_NGINX_VENV}"
    if system("$python -c 'import websockets' 2>/dev/null") != 0;

my $ws = 'location /ws/ { asgi_pass asgi_websockets:app; }
          location /small/ { asgi_websocket_max_message_size 1k; asgi_pass asgi_websockets:app; }';

# Runs a case of ws_client.py; its `name: value` lines as a hash.
sub client {
    my ($ngx, $case, @args) = @_;
    my $out = `timeout 60 $python $FindBin::Bin/lib/ws_client.py $ngx->{port} $case @args 2>&1`;
    diag($out) if $?;
    my %seen = $out =~ /^([^:\n]+): (.*)$/mg;
    return \%seen;
}

# What the app recorded (its events list, over HTTP).
sub events {
    my ($ngx) = @_;
    my (undef, $body) = NginxRunner::response($ngx->get('/ws/events'), 10);
    return $body;
}

subtest 'echo: handshake, text, binary, fragments, ping, 16 MiB, the client closes with 4321' => sub {
    plan skip_all => 'EAGAIN mode: a byte per write' if $eagain;
    my $ngx = NginxRunner->new(server => $ws);
    my $got = client($ngx, 'echo');
    is($got->{subprotocol}, 'chat', 'the subprotocol the app chose');
    is($got->{'x-echo'}, 'yes', "the app's header in the 101");
    is($got->{text}, 'héllo', 'a text message, UTF-8');
    is($got->{binary}, q{b'\x00\xffbin'}, 'a binary message');
    is($got->{fragmented}, 'fragmented', 'three fragments, one message');
    is($got->{pong}, 'yes', 'ping answered');
    is($got->{'16 MiB back intact'}, 'True', 'a 16 MiB message, both ways');
    is($got->{closed}, '4321', 'the close handshake');
    like(events($ngx), qr/\('echo closed', 4321\)/, 'the app got websocket.disconnect with the code');
    unlike($ngx->error_log, qr/\[(alert|error)\]/, 'no error');
};

subtest 'the scope; the app closes with 4000 and a reason' => sub {
    my $ngx = NginxRunner->new(server => $ws);
    my $got = client($ngx, 'scope');
    is($got->{scope}, "{'type': 'websocket', 'scheme': 'ws', 'path': '/ws/scope', 'query_string': 'x=1', 'http_version': '1.1', 'subprotocols': ['a', 'b'], 'has_method': False}",
        'type, ws scheme, path, query, subprotocols offered, no method');
    is($got->{close}, '4000 done', 'code and reason');
};

subtest 'refusals: websocket.close before accept is 403; the denial response extension' => sub {
    my $ngx = NginxRunner->new(server => $ws);
    my $got = client($ngx, 'refused');
    like($got->{deny}, qr/^403 /, 'websocket.close before accept: 403');
    is($got->{deny_response}, q{401 bytearray(b'no entry\n')}, "the app's own 401 and body");
};

subtest 'the app closes; returns with the socket open (1000); raises (1011); sends a bad message (1011 and why)' => sub {
    my $ngx = NginxRunner->new(server => $ws);
    my $got = client($ngx, 'server_close');
    is($got->{message}, 'bye', 'a message before the close');
    is($got->{close}, '4001 server says bye', "the app's code and reason");
    like(events($ngx), qr/\('server_close then', 'websocket\.disconnect'\)/, 'receive() after the close: disconnect');
    is(client($ngx, 'returns')->{close}, '1000', 'an app that returns: closed normally');
    is(client($ngx, 'raises')->{close}, '1011', 'an app that raises: 1011');
    like($ngx->error_log, qr/\[error\] .*asgi: app "asgi_websockets:app" raised:\n(?:.*\n)*?ValueError: the WebSocket app failed on purpose, client: /, 'its traceback');
    is(client($ngx, 'bad_message')->{close}, '1011', 'a bad message: 1011');
    like($ngx->error_log, qr/\[error\] .*asgi: app "asgi_websockets:app": 'text' of 'websocket\.send' must be a str, not bytes, client: /, 'the fault named');
    unlike($ngx->error_log, qr/\[alert\]/, 'no alert');
};

subtest 'frames that break RFC 6455 close the connection with their code; the app hears it' => sub {
    my $ngx = NginxRunner->new(server => $ws);
    my $got = client($ngx, 'violations');
    is($got->{unmasked}, 'HTTP/1.1 101  1002 a client frame must be masked', 'unmasked: 1002');
    is($got->{'bad utf-8'}, 'HTTP/1.1 101  1007 a text message that is not UTF-8', 'bad UTF-8: 1007');
    is($got->{'reserved bits'}, 'HTTP/1.1 101  1002 reserved bits set (no extension was negotiated)', 'RSV bits: 1002');
    is($got->{'continuation first'}, 'HTTP/1.1 101  1002 a continuation frame without a message to continue', 'a stray continuation: 1002');
    like(events($ngx), qr/\('echo closed', 1002\), \('echo closed', 1007\), \('echo closed', 1002\), \('echo closed', 1002\)/, 'the app got each code');
    like($ngx->error_log, qr/\[info\] .*asgi: the WebSocket closes \(1007\): a text message that is not UTF-8, client: /, 'error_log at info');
    my $small = client($ngx, 'too_big');
    is($small->{'1000 bytes'}, '1000', 'within asgi_websocket_max_message_size');
    like($small->{close}, qr/^1009 a message over 1024 bytes/, 'over it: 1009');
};

subtest 'asgi_websocket_ping_interval: a quiet client is pinged, a pong keeps it, no answer closes it' => sub {
    my $ngx = NginxRunner->new(server => "$ws
        location /keep/ { asgi_websocket_ping_interval 1s; asgi_pass asgi_websockets:app; }");
    my $got = client($ngx, 'keepalive');
    like($got->{status}, qr{^HTTP/1\.1 101\b}, 'open');
    like($got->{first}, qr/^\[\((?:0\.[89]|1\.[0-5]), 9\)\] closed=False$/, 'one ping (opcode 9) after 1 s of quiet');
    like($got->{'after the pong'}, qr/^\[\((?:0\.[89]|1\.[0-5]), 9\)\] closed=False$/,
        'the pong answered it: the next ping a second later, the connection open');
    like($got->{unanswered}, qr/^\[\] closed=True$/, 'unanswered: closed a second later, without a close frame');
    ok($ngx->wait_log(qr/\[info\] .*asgi: the WebSocket client answered no ping within asgi_websocket_ping_interval \(1000 ms\); closing the connection/, 5),
        'error_log says why');
    like(events($ngx), qr/\('echo closed', 1006\)/, 'the app got websocket.disconnect 1006 (and the worker serves on)');
};

subtest 'asgi_websocket_ping_interval off: no ping' => sub {
    my $ngx = NginxRunner->new(server => "$ws
        location /keep/ { asgi_websocket_ping_interval off; asgi_pass asgi_websockets:app; }");
    my $got = client($ngx, 'keepalive');
    like($got->{first}, qr/^\[\] closed=False$/, 'no frame in 1.6 s');
};

subtest 'a client that reads nothing suspends the app in send(); then every message arrives' => sub {
    plan skip_all => 'EAGAIN mode: a byte per write' if $eagain;
    my $ngx = NginxRunner->new(server => $ws, listen_opts => 'sndbuf=16k');
    my $got = client($ngx, 'slow_client');
    cmp_ok($got->{'sent after 1 s'}, '<=', 8, "the app had sent $got->{'sent after 1 s'} of 128 messages of 64 KiB after 1 s");
    is($got->{received}, 128, 'then all 128 arrived');
    is($got->{intact}, 'True', 'intact, in order');
};

subtest 'an app that takes no message: nginx stops reading, the client backs up; then all arrive' => sub {
    plan skip_all => 'EAGAIN mode: a byte per write' if $eagain;
    my $ngx = NginxRunner->new(server => $ws, listen_opts => 'rcvbuf=16k');
    my $got = client($ngx, 'slow_reader');
    cmp_ok($got->{'sent in 0.7 s'}, '<=', 40, "the client sent $got->{'sent in 0.7 s'} of 400 messages of 64 KiB in 0.7 s");
    like($got->{answer}, qr/^got (\d+)$/, 'the app answered at the end');
    my ($n) = ($got->{answer} // '') =~ /(\d+)/;
    cmp_ok($n // 0, '>=', 401, 'having taken every message');
};

subtest '1,000 idle WebSockets cost the worker at most 64 MiB' => sub {
    plan skip_all => 'EAGAIN mode' if $eagain;
    my $ngx = NginxRunner->new(server => $ws, connections => 1200, main => 'worker_rlimit_nofile 4096;');
    my ($pid) = $ngx->worker_pids;
    client($ngx, 'returns');  # the app and the loop warm
    my $rss = sub { open my $f, '<', "/proc/$pid/status" or return 0; local $/; my ($kb) = <$f> =~ /^VmRSS:\s+(\d+)/m; $kb };
    my $before = $rss->();
    open my $holder, '-|', "ulimit -n 4096; exec $python $FindBin::Bin/lib/ws_client.py $ngx->{port} idle 1000 </dev/null 2>&1"
        or die $!;
    # stdin is /dev/null: the client reports, then closes them all at once.
    my $out = do { local $/; <$holder> };
    like($out, qr/^open: 1000$/m, '1000 open at once');
    like($out, qr/^closed: 1000$/m, 'and closed');
    my $held = $rss->();
    diag("worker RSS: $before KiB idle, $held KiB after 1000 WebSockets");
    cmp_ok($held - $before, '<=', 64 * 1024, 'at most 64 MiB more');
};

subtest 'nginx -s quit: each open WebSocket gets 1001 (going away), the app hears it, the worker exits' => sub {
    my $ngx = NginxRunner->new(master => 1, server => $ws);
    my $holder;
    open $holder, '|-', "exec $python $FindBin::Bin/lib/ws_client.py $ngx->{port} idle 3 > $ngx->{root}/idle.out 2>&1" or die $!;
    sleep 1.5;
    system($ENV{TEST_NGINX_BINARY}, '-p', "$ngx->{root}/", '-c', "$ngx->{root}/conf/nginx.conf", '-s', 'quit') == 0
        or die 'quit failed';
    ok($ngx->wait_log(qr/\[notice\] .*: exit\n/, 10), 'the worker exited');
    close $holder;
    open my $f, '<', "$ngx->{root}/idle.out";
    my $out = do { local $/; <$f> } // '';
    like($out, qr/^close codes: \[1001, 1001, 1001\]$/m, 'each client got 1001');
    like($ngx->error_log, qr/\[notice\] .*asgi: app "asgi_websockets:app" stopped \(lifespan\)/, 'lifespan shutdown ran');
    unlike($ngx->error_log, qr/open socket|\[alert\]/, 'no socket left open, no alert');
    $ngx->{stopped} = 1;
};

done_testing;

# ASGI compliance, checked with asgiref's own description of the spec
# (asgiref.typing): every scope the server gives (http over HTTP/1.0, 1.1
# and 2, websocket, lifespan) and every event receive() returns (a body in
# memory, in nginx's temp file, streamed; the disconnect; the WebSocket's
# connect, text and binary messages and disconnect; lifespan.startup) has
# the keys and the types asgiref says (t/apps/asgi_compliance.py).
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use NginxRunner;
use Test::More;

delete $ENV{TEST_NGINX_WSGI_THREADS};
my $python = "$ENV{TEST_NGINX_VENV}/bin/python";
plan skip_all => "no virtualenv with asgiref and websockets at $ENV{TEST_NGINX_VENV}"
    if system("$python -c 'import asgiref.typing, websockets' 2>/dev/null") != 0;

subtest 'the checker finds faults: a scope with keys missing, an event of the wrong type' => sub {
    my $out = `cd $ENV{TEST_NGINX_APPS} && $python -c '
import asgi_compliance as c
c.check_scope({"type": "http", "asgi": {"version": "3.0"}, "method": "GET", "path": b"/"})
c.check_event({"type": "http.request", "body": "text", "more_body": False})
c.check_event({"type": "websocket.receive", "bytes": b"x", "text": "x"})
print("\\n".join(c.faults))' 2>&1`;
    like($out, qr/http scope: 'http_version' is missing/, 'a missing key');
    like($out, qr/http scope: 'path' is b'\/', not <class 'str'>/, 'a path of bytes');
    like($out, qr/http scope: 'asgi' is/, 'asgi without spec_version');
    like($out, qr/http\.request event: 'body' is 'text', not <class 'bytes'>/, 'a body of str');
    like($out, qr/websocket\.receive event: /, 'bytes and text both given');
};

subtest 'every scope and event the server gives is as asgiref.typing says' => sub {
    my $ngx = NginxRunner->new(
        listen_opts => '',
        http => "wsgi_python_home $ENV{TEST_NGINX_VENV};",
        server => 'http2 on;
            client_body_buffer_size 16k;
            location /c/ { asgi_pass asgi_compliance:app; }
            location /s/ { wsgi_request_buffering off; asgi_pass asgi_compliance:app; }');
    my ($status, $body) = NginxRunner::response($ngx->get('/c/get?x=1'));
    is($body, "ok\n", 'HTTP/1.1 GET');

    my $s = $ngx->client;
    print $s "GET /c/old HTTP/1.0\r\n\r\n";
    ($status, $body) = NginxRunner::response($s);
    is($body, "ok\n", 'HTTP/1.0 GET');

    for my $size (100, 100_000) {
        $s = $ngx->client;
        print $s "POST /c/post HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: $size\r\n\r\n" . ('b' x $size);
        ($status, $body) = NginxRunner::response($s);
        is($body, "ok\n", "a body of $size bytes (" . ($size > 16384 ? "nginx's temp file" : 'memory') . ')');
    }

    $s = $ngx->client;
    print $s "POST /s/stream HTTP/1.1\r\nHost: x\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n";
    select(undef, undef, undef, 0.2);
    print $s "6\r\n world\r\n0\r\n\r\n";
    ($status, $body) = NginxRunner::response($s);
    is($body, "ok\n", 'a streamed body (wsgi_request_buffering off)');

  SKIP: {
        skip 'curl is not installed', 1 if system('curl --version >/dev/null 2>&1') != 0;
        my $h2 = `curl -s -m 10 --http2-prior-knowledge -d x=1 http://127.0.0.1:$ngx->{h2_port}/c/h2`;
        is($h2, "ok\n", 'HTTP/2 POST');
    }

    my $ws = `timeout 30 $python $FindBin::Bin/lib/ws_client.py $ngx->{port} compliance 2>&1`;
    like($ws, qr/^text: hi$/m, 'a WebSocket text message echoed');
    like($ws, qr/^binary: b'\\x01'$/m, 'a binary one');
    like($ws, qr/^closed: 1000$/m, 'closed');

    ($status, $body) = NginxRunner::response($ngx->get('/c/found'));
    my ($checked) = $body =~ /^checked: (.*)$/m;
    for my $what ('http scope', 'websocket scope', 'lifespan scope', 'http.request event',
        'http.disconnect event', 'websocket.connect event', 'websocket.receive event',
        'websocket.disconnect event', 'lifespan.startup event') {
        like($checked // '', qr/(^|, )\Q$what\E(,|$)/, "checked: $what");
    }
    like($body, qr/^faults: 0$/m, 'no fault') or diag($body);
    $ngx->stop;
};

done_testing;

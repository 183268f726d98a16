# ASGI frameworks through asgi_pass (issue 20), from the examples'
# virtualenv: each route of the FastAPI example (nginx-conf/fastapi/)
# answers nginx's clients as it answers Starlette's own in-process
# TestClient (status, the app's headers, body), at / and mounted under
# /shop/ (root_path); Django's ASGI handler serves the example project
# (nginx-conf/django/); and nginx -t takes fastapi.conf and django-asgi.conf.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use NginxRunner;
use Test::More;
use File::Basename qw(dirname);
use Time::HiRes qw(time);

# asgi_pass takes no wsgi_threads.
delete $ENV{TEST_NGINX_WSGI_THREADS};

my $venv = $ENV{TEST_NGINX_VENV} or die "TEST_NGINX_VENV is not set (the Makefile sets it)";
my $examples = $ENV{TEST_NGINX_EXAMPLES} or die "TEST_NGINX_EXAMPLES is not set (the Makefile sets it)";
-x "$venv/bin/python" or die "no virtualenv in $venv: run `make venv`";

sub python_for { "wsgi_python_home $venv; wsgi_python_path $examples/$_[0];" }

# Frameworks hand receive and send to threads of their own (FastAPI's
# `def` routes, Django's sync views): the request's channel must never be
# dropped there (pyo3 leaks an unsendable object dropped off its thread,
# with this traceback in error_log).
sub no_leaked_channel {
    my ($ngx) = @_;
    my $leaked = () = $ngx->error_log =~ /Channel is unsendable, but is being dropped on another thread/g;
    is($leaked, 0, 'no request channel dropped on a thread');
}

# The FastAPI example's requests (t/apps/asgi_side_by_side.py sends them),
# with the status both sides must agree on.
my @fastapi = (
    [page               => 200, 'an HTML page that links with url_for()'],
    [json               => 200, 'JSON from the lifespan state'],
    [item               => 200, 'a path parameter'],
    [query_list         => 200, 'a repeated query parameter as a list'],
    [item_missing       => 404, 'HTTPException'],
    [path_not_int       => 422, 'a path parameter that fails validation'],
    [path_decoded       => 200, 'a percent-encoded UTF-8 path and query'],
    [query_invalid      => 422, 'a query parameter out of range'],
    [post_json          => 201, 'a JSON body into a pydantic model'],
    [post_invalid       => 422, "a JSON body the model refuses: FastAPI's error list"],
    [post_not_json      => 422, 'a body that is not JSON'],
    [post_big           => 201, 'a 240 kB JSON body (nginx buffers it to a file, receive() gives it in pieces)'],
    [upload             => 200, 'a 2 MiB upload read as it arrives (wsgi_request_buffering off): its size and digest'],
    [upload_chunked     => 200, '... a chunked one'],
    [stream             => 200, 'StreamingResponse of an async generator'],
    [file               => 200, 'FileResponse: nginx sends the file (pathsend)'],
    [file_range         => 206, 'FileResponse of a range'],
    [file_head          => 405, 'HEAD of a GET route'],
    [not_found          => 404, 'no route'],
    [method_not_allowed => 405, 'a method the route does not take: Allow'],
    [redirect           => 302, 'RedirectResponse'],
    [redirect_slash     => 307, "Starlette's trailing-slash redirect (an absolute URL from Host)"],
    [headers            => 200, 'a repeated request header as a list; a response header'],
    [cookie_set         => 200, 'two Set-Cookie headers'],
    [cookie_get         => 200, 'a cookie read'],
    [mounted            => 200, 'a mounted sub-application: root_path /admin'],
    [mounted_redirect   => 307, "the mount's redirect to its slash"],
    [openapi            => 200, 'the OpenAPI schema'],
    [prefix_page        => 200, 'under /shop/: url_for() carries the prefix'],
    [prefix_json        => 200, 'under /shop/: root_path'],
    [prefix_redirect    => 302, 'under /shop/: the redirect'],
    [prefix_post        => 201, 'under /shop/: a POST, its Location'],
    [prefix_mounted     => 200, 'under /shop/: the sub-application, root_path /shop/admin'],
    [prefix_openapi     => 200, 'under /shop/: the schema names the server /shop'],
    [prefix_docs        => 200, 'under /shop/: the docs page finds the schema'],
);

my $fastapi_server = <<'_EOC_';
location / { asgi_pass fastapi_example:app; }
location /upload {
    wsgi_request_buffering off;
    client_max_body_size 1g;
    asgi_pass fastapi_example:app;
}
location /shop/ {
    asgi_param SCRIPT_NAME /shop;
    asgi_pass fastapi_example:app;
}
_EOC_

subtest 'FastAPI: nginx answers as the in-process TestClient does, route by route' => sub {
    my $ngx = NginxRunner->new(http => python_for('fastapi'), server => $fastapi_server);
    my $base = "http://127.0.0.1:$ngx->{port}";
    my @lines = `$venv/bin/python $FindBin::Bin/apps/asgi_side_by_side.py $base $examples 2>&1`;
    is($?, 0, 'the comparison ran') or diag(@lines);
    my %got = map { /^(\S+) (.*)$/ ? ($1 => $2) : () } @lines;
    for my $case (@fastapi) {
        my ($name, $status, $what) = @$case;
        is(delete $got{$name} // 'not run', "$status same", "$name: $what");
    }
    is_deeply([sort keys %got], [], 'no request left unchecked');
    unlike($ngx->error_log, qr/\[(alert|error)\]/, 'no error in error_log');
    no_leaked_channel($ngx);
};

subtest 'FastAPI: StreamingResponse reaches the client line by line' => sub {
    my $ngx = NginxRunner->new(http => python_for('fastapi'), server => $fastapi_server);
    my $s = $ngx->get('/stream');
    my ($first, $first_took) = NginxRunner::read_until($s, qr/line 0\n/, 5);
    my ($rest, $rest_took) = NginxRunner::read_until($s, qr/line 4\n/, 5);
    like($first, qr/\r\nTransfer-Encoding: chunked\r\n/, 'chunked');
    like($first, qr/line 0\n\r\n\z/, 'the first line, alone');
    like($rest, qr/line 4\n/, 'then the last');
    # The app sleeps 50 ms after each line.
    cmp_ok($rest_took, '>', 0.1, "the last line came $rest_took s after the first");
};

# Sends one request (a body makes it a form POST); (status, head, body).
sub http {
    my ($ngx, $request, $form) = @_;
    my $s = $ngx->client;
    my $head = "$request HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n";
    $head .= "Content-Type: application/x-www-form-urlencoded\r\nContent-Length: " . length($form) . "\r\n"
        if defined $form;
    print $s "$head\r\n" . ($form // '');
    my ($data) = NginxRunner::read_until($s, qr/\A(?!)/, 10);
    my ($got_head, $body) = split /\r\n\r\n/, $data, 2;
    my ($status) = ($got_head // '') =~ m{\AHTTP/1\.1 (\d{3})};
    return ($status // 0, $got_head // '', $body // '');
}

subtest "FastAPI: the example's WebSocket chat, two members, at / and under /shop/" => sub {
    my $ngx = NginxRunner->new(http => python_for('fastapi'), server => $fastapi_server);
    for my $prefix ('', '/shop') {
        my @lines = `timeout 30 $venv/bin/python $FindBin::Bin/lib/chat_client.py ws://127.0.0.1:$ngx->{port}$prefix/chat/ws 2>&1`;
        is($?, 0, "the chat ran ($prefix/chat/ws)") or diag(@lines);
        my %saw = map { /^(\w+): (.*)$/ ? ($1 => $2) : () } @lines;
        is($saw{alice}, '* bob joined | alice: hello | bob: hi alice', 'alice saw bob join and both messages');
        is($saw{bob}, '* bob joined | alice: hello | bob: hi alice', 'bob saw himself join and both messages');
    }
    unlike($ngx->error_log, qr/\[(alert|error)\]/, 'no error');
};

subtest "Django's ASGI handler (mysite.asgi) through asgi_pass" => sub {
    my $ngx = NginxRunner->new(http => python_for('django'), server => <<'_EOC_');
location / { asgi_pass mysite.asgi:application; }
location /shop/ {
    asgi_param SCRIPT_NAME /shop;
    asgi_pass mysite.asgi:application;
}
_EOC_
    my ($status, $head, $body) = http($ngx, 'GET /');
    is($status, 200, 'a page: 200');
    like($head, qr/\r\nContent-Type: text\/html; charset=utf-8\r\n/, '... text/html');
    like($head, qr/\r\nX-Content-Type-Options: nosniff\r\n/, "... with the middleware's header");
    like($body, qr/<h1>Django, served by nginx itself<\/h1>/, '... the page');

    ($status, $head, $body) = http($ngx, 'GET /no/such/page');
    is($status, 404, 'no such page: 404');
    like($body, qr/<h1>Not Found<\/h1>/, "... Django's 404 page");

    ($status, $head, $body) = http($ngx, 'GET /api/overview');
    is("$status $body", '200 {"parts": [{"source": "stock", "ok": true}, {"source": "orders", "ok": true}]}',
        'an async view');

    ($status, $head, $body) = http($ngx, 'POST /form', 'name=Ada&age=36');
    is("$status $body", "200 hello Ada, you are 36\n", 'a form POST: the body through receive()');

    ($status, $head, $body) = http($ngx, 'GET /stream');
    like($head, qr/\r\nTransfer-Encoding: chunked\r\n/, 'StreamingHttpResponse: chunked');
    like($body, qr/line 0\n.*line 4\n/s, '... every line');

    ($status, $head, $body) = http($ngx, 'GET /shop/api/items');
    like($body, qr/"path": "\/shop\/api\/items", "script_name": "\/shop"/, 'under /shop/: root_path is the script name');
    ($status, $head) = http($ngx, 'GET /shop/old');
    like($head, qr/\r\nLocation: \/shop\/\r\n/, '... and reverse() carries it');

    unlike($ngx->error_log, qr/\[(alert|error)\]/, 'no error in error_log');
    no_leaked_channel($ngx);
};

subtest 'nginx -t takes fastapi.conf and django-asgi.conf' => sub {
    # The examples load modules/ngx_http_wsgi_module.so from the prefix and
    # write logs/ there: a prefix of their own, whichever nginx this is.
    my $prefix = "$ENV{PWD}/t/servroot_conftest";
    system('rm', '-rf', $prefix);
    mkdir $prefix;
    mkdir "$prefix/logs";
    symlink(dirname($ENV{TEST_NGINX_LOAD_MODULES}), "$prefix/modules") or die "symlink: $!";
    for my $conf ('fastapi.conf', 'django-asgi.conf') {
        my $out = `$ENV{TEST_NGINX_BINARY} -t -q -e stderr -p $prefix/ -c $examples/$conf 2>&1`;
        is($?, 0, "nginx -t $conf") or diag($out);
    }
};

done_testing;

# Thread mode (wsgi_threads): blocking apps run on pool threads, so one slow
# request never stalls the worker. Concurrency, a static location that stays
# fast while every thread sleeps, the bounded queue and its timeout,
# thread-locals that persist, close() when the client leaves, graceful quit
# with a request in flight, and an idle worker that uses no CPU. (The
# streaming, flush, abort and slow-client tests run in thread mode too:
# t/threads/.)
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use NginxRunner;
use NginxCompat qw(hook_line has_poll);
use Test::More;
use Time::HiRes qw(time sleep);

# Sends GET $path on a new connection; returns the socket.
sub start_get {
    my ($ngx, $path) = @_;
    return $ngx->get($path);
}

# Reads a whole HTTP/1.1 "Connection: close" response; returns (status, body, seconds).
sub finish_get {
    my ($s, $started, $timeout) = @_;
    my ($data) = NginxRunner::read_until($s, qr/\A(?!)/, $timeout // 10);
    my ($status) = $data =~ m{\AHTTP/1\.1 (\d{3})};
    my (undef, $body) = split /\r\n\r\n/, $data, 2;
    return ($status // 0, $body // '', time - $started);
}

subtest 'eight requests to an app that sleeps 0.5 s take about 0.5 s in all, not 4 s' => sub {
    my $ngx = NginxRunner->new(server => 'location /sleep { wsgi_threads 8; wsgi_pass threads:sleep; }');
    my $start = time;
    my @socks = map { start_get($ngx, '/sleep?0.5') } 1 .. 8;
    my @results = map { [finish_get($_, $start)] } @socks;
    my $took = time - $start;
    is(scalar(grep { $_->[0] == 200 && $_->[1] eq "slept 0.50\n" } @results), 8, 'all eight answered');
    cmp_ok($took, '<', 1.5, sprintf('in %.2f s', $took));
    $ngx->stop;
};

subtest 'eight requests that arrive together (HTTP/2 streams of one connection) each get a thread at once' => sub {
    # Requests queued in one turn of the event loop wake one thread between
    # them; each thread that takes one wakes the next. Were the wake-up
    # lost, one thread would run the eight in turn: 4 s. (h2load, not curl:
    # Debian 12's curl fails the streams it multiplexes over prior knowledge.)
    plan skip_all => 'h2load is not installed' if system('h2load --version >/dev/null 2>&1') != 0;
    my $ngx = NginxRunner->new(
        http => 'http2 on;',
        server => 'location /sleep { wsgi_threads 8; wsgi_pass threads:sleep; }');
    my $start = time;
    my $out = `h2load -n 8 -c 1 -m 8 -T 10 -N 10 "http://127.0.0.1:$ngx->{h2_port}/sleep?0.5" 2>&1`;
    my $took = time - $start;
    like($out, qr/^requests: 8 total, 8 started, 8 done, 8 succeeded/m, 'all eight answered')
        or diag($out, $ngx->error_log);
    like($out, qr/^traffic: .* \(88\) data/m, 'with their bodies (8 x "slept 0.50\n")');
    my @conns = $ngx->error_log =~ /\*(\d+) sleep: start 0\.50, .*HTTP\/2\.0/g;
    is(scalar(@conns), 8, 'eight calls');
    is(scalar(keys %{{ map { $_ => 1 } @conns }}), 1, 'from one connection');
    cmp_ok($took, '<', 1.5, sprintf('in %.2f s', $took))
        or diag($ngx->error_log);
    $ngx->stop;
};

subtest 'a static location on the same worker stays fast while every thread sleeps' => sub {
    my $ngx = NginxRunner->new(server => '
        location /sleep { wsgi_threads 4; wsgi_pass threads:sleep; }
        location /static { return 200 "static\n"; }');
    my $start = time;
    my @sleepers = map { start_get($ngx, '/sleep?1.5') } 1 .. 6;  # 4 run, 2 queue
    sleep 0.2;
    my @latencies;
    for (1 .. 10) {
        my $t = time;
        my ($status, $body) = finish_get(start_get($ngx, '/static'), $t);
        push @latencies, time - $t if $status == 200 && $body eq "static\n";
    }
    is(scalar @latencies, 10, 'ten static responses');
    my ($worst) = sort { $b <=> $a } @latencies;
    cmp_ok($worst, '<', 0.2, sprintf('the slowest in %.1f ms', $worst * 1000));
    my @results = map { [finish_get($_, $start)] } @sleepers;
    is(scalar(grep { $_->[0] == 200 } @results), 6, 'the sleepers were all answered');
    $ngx->stop;
};

subtest 'inline (wsgi_threads 0), a sleeping app does stall the static location' => sub {
    my $ngx = NginxRunner->new(server => '
        location /sleep { wsgi_pass threads:sleep; }
        location /static { return 200 "static\n"; }');
    my $sleeper = start_get($ngx, '/sleep?0.6');
    sleep 0.1;
    my $t = time;
    my ($status) = finish_get(start_get($ngx, '/static'), $t);
    my $took = time - $t;
    is($status, 200, 'static answered');
    cmp_ok($took, '>', 0.3, sprintf('only after the app (%.2f s): what thread mode avoids', $took));
    finish_get($sleeper, $t);
    $ngx->stop;
};

subtest 'the queue: max_queue full answers 503 at once; wsgi_queue_timeout answers 503 after the wait' => sub {
    my $ngx = NginxRunner->new(server => '
        location /sleep {
            wsgi_threads 1 max_queue=1;
            wsgi_queue_timeout 300ms;
            wsgi_pass threads:sleep;
        }');
    my $start = time;
    my $running = start_get($ngx, '/sleep?1');
    sleep 0.1;
    my $queued = start_get($ngx, '/sleep?1');
    sleep 0.1;
    my $t = time;
    my ($full, undef, $full_took) = finish_get(start_get($ngx, '/sleep?1'), $t);
    is($full, 503, 'the queue is full: 503');
    cmp_ok($full_took, '<', 0.2, 'at once');
    my ($timed_out, undef, $waited) = finish_get($queued, $start + 0.1);
    is($timed_out, 503, 'the queued request timed out: 503');
    cmp_ok($waited, '>', 0.25, sprintf('after %.2f s', $waited));
    cmp_ok($waited, '<', 0.9, 'not after the running request');
    my ($ok) = finish_get($running, $start);
    is($ok, 200, 'the running request completes');
    like($ngx->error_log, qr/\[error\] .*wsgi: all 1 threads are busy and 1 requests wait for one \(wsgi_threads 1 max_queue=1\); answering 503, client: /,
        'error_log says why (queue full)');
    like($ngx->error_log, qr/\[error\] .*wsgi: no thread was free within wsgi_queue_timeout \(300 ms\); answering 503, client: /,
        'error_log says why (timeout)');
    # The app the timed-out request would have run never ran.
    my ($again) = finish_get(start_get($ngx, '/sleep?0.01'), time);
    is($again, 200, 'the pool serves the next request');
    $ngx->stop;
};

subtest 'a thread keeps its Python thread state: thread-locals persist between requests' => sub {
    my $ngx = NginxRunner->new(server => 'location /state { wsgi_threads 1; wsgi_pass threads:thread_state; }');
    my (undef, $first) = finish_get(start_get($ngx, '/state'), time);
    my (undef, $second) = finish_get(start_get($ngx, '/state'), time);
    like($first, qr/\A(\S+) 1 False\n\z/, 'first request: count 1, not the main thread');
    my ($name) = $first =~ /\A(\S+)/;
    is($second, "$name 2 False\n", 'second request: same thread, count 2');
    $ngx->stop;
};

subtest 'a client that leaves mid-stream: the thread stops at its next chunk and close() runs' => sub {
    # One thread, shared by both locations.
    my $ngx = NginxRunner->new(
        listen_opts => 'sndbuf=16k',
        server => '
            wsgi_threads 1;
            location /endless { wsgi_pass threads:endless; }
            location /sleep { wsgi_pass threads:sleep; }');
    my $s = $ngx->get('/endless', rcvbuf => 16384);
    my ($data) = NginxRunner::read_until($s, qr/\r\n\r\n.{4096}/s, 3);
    like($data, qr/\AHTTP\/1\.1 200/, 'streaming');
    close $s;
    ok($ngx->wait_log(qr/\[error\] .*endless: close\(\) called/, 5), 'close() called after the client left');
    my ($status) = finish_get(start_get($ngx, '/sleep?0.01'), time, 3);
    is($status, 200, 'the thread is free for the next request');
    $ngx->stop;
};

subtest 'a client that leaves while its request waits in the queue: the app never runs for it, its place is free' => sub {
    my $ngx = NginxRunner->new(server => 'location /sleep { wsgi_threads 1 max_queue=1; wsgi_pass threads:sleep; }');
    my $start = time;
    my $running = start_get($ngx, '/sleep?0.8');
    sleep 0.1;
    my $leaving = start_get($ngx, '/sleep?0.33');
    sleep 0.1;
    close $leaving;
    ok($ngx->wait_log(qr/\[info\] .*wsgi: the client closed the connection while the request waited for a thread, client: .*GET \/sleep\?0\.33 /, 2),
        'error_log says the client left (info)');
    my $queued = start_get($ngx, '/sleep?0.02');
    my ($status) = finish_get($running, $start);
    is($status, 200, 'the running request completes');
    my ($next) = finish_get($queued, $start);
    is($next, 200, 'a request queued after it got its place (max_queue=1), not a 503');
    unlike($ngx->error_log, qr/sleep: start 0\.33/, 'the app never ran for the client that left');
    $ngx->stop;
};

# With poll (level-triggered) too, which reports a readable socket every
# turn: the module peeks, as nginx's upstream module does, instead of
# waiting for a write to fail. (Found by EAGAIN mode, which runs nginx with
# poll.)
for my $events ('', 'poll') {
    my $with = $events ? " (events: $events)" : '';
    subtest "a client that leaves while the app runs: the app learns it at its next chunk, close() runs$with" => sub {
        plan skip_all => "this nginx has no poll event method (--with-poll_module)" if $events && !has_poll();
        local $ENV{TEST_NGINX_EVENT_TYPE} = $events if $events;
        my $ngx = NginxRunner->new(server => 'location /late { wsgi_threads 1; wsgi_pass threads:sleep_then_yield; }');
        my $s = start_get($ngx, '/late');
        sleep 0.15;
        close $s;
        ok($ngx->wait_log(qr/\[info\] .*wsgi: the client connection is gone; closing the response iterable/, 0.3),
            'noticed at once, while the app sleeps');
        unlike($ngx->error_log, qr/close\(\) called/, 'the app is still inside its sleep');
        ok($ngx->wait_log(qr/sleep_then_yield: close\(\) called/, 2), 'close() runs after its next chunk');
        $ngx->stop;
    };
}

subtest 'nginx -s quit lets a request in flight finish, then the worker exits' => sub {
    my $ngx = NginxRunner->new(master => 1, server => 'location /sleep { wsgi_threads 2; wsgi_pass threads:sleep; }');
    my $start = time;
    my $s = start_get($ngx, '/sleep?1');
    sleep 0.3;
    ok($ngx->quit, 'nginx exited, after the request in flight');
    my ($status, $body) = finish_get($s, $start);
    is($status, 200, 'the request in flight was answered');
    is($body, "slept 1.00\n", 'in full');
    unlike($ngx->error_log, qr/\[alert\]|open socket/, 'no alert at exit');
};

subtest 'nginx -s quit waits for an app whose client already left' => sub {
    my $ngx = NginxRunner->new(master => 1, server => 'location /late { wsgi_threads 1; wsgi_pass threads:sleep_then_yield; }');
    my $s = start_get($ngx, '/late?1.5');
    sleep 0.2;
    close $s;
    ok($ngx->wait_log(qr/the client connection is gone/, 1), 'the request ended');
    ok($ngx->quit, 'nginx exited');
    like($ngx->error_log, qr/sleep_then_yield: close\(\) called/, 'after the app finished and its close() ran');
    unlike($ngx->error_log, qr/still inside the app at exit/, 'no thread was left behind');
};

subtest 'nginx -s quit: the line an app logs as its thread finishes is written, even when the worker exits before its event loop reads it' => sub {
    # Test build: once the worker exits, the busy timer blocks the event loop
    # until the pool thread is done, so the thread's close() line is handed
    # over while nothing reads it, and the worker leaves right after.
    my $ngx = NginxRunner->new(master => 1,
        http => hook_line('busy_timer_blocks_at_exit'),
        server => 'location /late { wsgi_threads 1; wsgi_pass threads:sleep_then_yield; }');
    my $s = start_get($ngx, '/late?1');
    sleep 0.2;
    close $s;
    ok($ngx->wait_log(qr/the client connection is gone/, 1), 'the request ended');
    ok($ngx->quit, 'nginx exited');
    like($ngx->error_log, qr/\[error\] .*sleep_then_yield: close\(\) called/, "close()'s line is in error.log");
    unlike($ngx->error_log, qr/still inside the app at exit/, 'no thread was left behind');
};

subtest 'an idle worker with a thread pool uses no CPU (no polling)' => sub {
    my $ngx = NginxRunner->new(master => 1, server => 'location /sleep { wsgi_threads 16; wsgi_pass threads:sleep; }');
    my (undef, $body) = finish_get(start_get($ngx, '/sleep?0.01'), time);
    is($body, "slept 0.01\n", 'the pool works');
    my ($worker) = $ngx->worker_pids;
    ok($worker, "worker $worker");
    my $used = NginxRunner::cpu_ticks_over($worker, 2);
    cmp_ok($used, '<=', 2, "$used clock ticks in 2 s idle");
    $ngx->stop;
};

done_testing;

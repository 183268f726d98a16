# wsgi_read_timeout: a call into the app (the call, one next(), close())
# that takes longer is interrupted with ReadTimeout (a TimeoutError) and
# answered 504, or aborted once the head is out; the stack of the stuck
# call is in error_log; close() runs. Inline, a signal cuts time.sleep
# short too. A call stuck where neither reaches (C code; on a pool thread,
# time.sleep) gets the worker replaced: inline at once, in thread mode
# gracefully. Each case inline and in thread mode.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use NginxRunner;
use NginxCompat qw(hook_line);
use Test::More;
use Time::HiRes qw(time sleep);

# GET $path on a new connection; (status, body, seconds, raw response).
sub fetch {
    my ($ngx, $path, $timeout) = @_;
    my $start = time;
    my $s = $ngx->get($path);
    my ($data) = NginxRunner::read_until($s, qr/\A(?!)/, $timeout // 10);
    my ($status) = $data =~ m{\AHTTP/1\.1 (\d{3})};
    my (undef, $body) = split /\r\n\r\n/, $data, 2;
    return ($status // 0, $body // '', time - $start, $data);
}

sub pid_of {
    my ($ngx) = @_;
    my ($status, $body) = fetch($ngx, '/pid');
    return $status == 200 && $body =~ /pid (\d+)/ ? $1 : 0;
}

my %modes = (inline => '', threads => 'wsgi_threads 4;');

for my $mode (sort keys %modes) {
    my $http = "wsgi_read_timeout 1s; $modes{$mode}";
    my $server = '
        location /pid { wsgi_pass timeouts:pid; }
        location /busy_call { wsgi_pass timeouts:busy_call; }
        location /busy_next { wsgi_pass timeouts:busy_next; }
        location /pause_stream { wsgi_pass timeouts:pause_stream; }
        location /steady_stream { wsgi_pass timeouts:steady_stream; }
        location /catches_everything { wsgi_pass timeouts:catches_everything; }
        location /two_seconds { wsgi_pass timeouts:two_seconds; }
        location /two_seconds_allowed { wsgi_read_timeout 3s; wsgi_pass timeouts:two_seconds; }
        location /static { return 200 "static\n"; }';

    subtest "$mode: a busy loop in the app's call: 504, its stack in error_log, the worker serves on" => sub {
        my $ngx = NginxRunner->new(http => $http, server => $server);
        my $pid = pid_of($ngx);
        my ($status, $body, $took) = fetch($ngx, '/busy_call');
        is($status, 504, 'answered 504');
        cmp_ok($took, '<', 3, sprintf('within 3 s (%.2f s)', $took));
        like($ngx->error_log,
            qr/\[error\].*wsgi: app "timeouts:busy_call" did not return within wsgi_read_timeout \(1000 ms\): ReadTimeout is raised in it; the stack of the call:\n.*line \d+, in busy_call\n\s+while True:/,
            'the stack of the stuck call, with the request');
        like($ngx->error_log, qr/did not return within.*\n(?:.*\n)*?.*request: "GET \/busy_call HTTP\/1\.1"/,
            "the request's context");
        is(pid_of($ngx), $pid, 'the same worker serves the next request');
        $ngx->stop;
    };

    subtest "$mode: a busy loop in next(): 504 and close() runs" => sub {
        my $ngx = NginxRunner->new(http => $http, server => $server);
        my ($status, undef, $took) = fetch($ngx, '/busy_next');
        is($status, 504, 'answered 504');
        cmp_ok($took, '<', 3, sprintf('within 3 s (%.2f s)', $took));
        ok($ngx->wait_log(qr/close\(\) ran/, 3), 'close() ran');
        like($ngx->error_log, qr/in forever\n\s+while True:/, 'the stack shows the generator');
        $ngx->stop;
    };

    subtest "$mode: a stream that pauses longer than the timeout is aborted" => sub {
        my $ngx = NginxRunner->new(http => $http, server => $server);
        my (undef, $body, $took, $raw) = fetch($ngx, '/pause_stream?3');
        like($raw, qr/\AHTTP\/1\.1 200/, 'the head went out');
        like($body, qr/first\n/, 'the first chunk arrived');
        unlike($body, qr/second|0\r\n\r\n/, 'no more: neither the second chunk nor the last chunk');
        cmp_ok($took, '<', 3, sprintf('cut within 3 s (%.2f s)', $took));
        ok($ngx->wait_log(qr/close\(\) ran/, 3), 'close() ran');
        like($ngx->error_log, qr/did not return within wsgi_read_timeout.*\n(?:.*\n)*?.*in spin/, 'the stack');
        $ngx->stop;
    };

    subtest "$mode: a stream that yields every 0.5 s for 3 s completes" => sub {
        my $ngx = NginxRunner->new(http => $http, server => $server);
        my ($status, $body, $took) = fetch($ngx, '/steady_stream');
        is($status, 200, 'answered 200');
        like($body, qr/tick 0\n.*tick 6\n.*0\r\n\r\n\z/s, 'every chunk, and the last chunk');
        cmp_ok($took, '>', 2.9, sprintf('it took its 3 s (%.2f s)', $took));
        unlike($ngx->error_log, qr/wsgi_read_timeout/, 'no timeout');
        $ngx->stop;
    };

    subtest "$mode: an app that catches the exception is still answered 504" => sub {
        my $ngx = NginxRunner->new(http => $http, server => $server);
        my ($status, $body) = fetch($ngx, '/catches_everything');
        is($status, 504, '504, not the app\'s 500 page');
        unlike($body, qr/error page/, 'none of its body');
        ok($ngx->wait_log(qr/caught ReadTimeout, a TimeoutError: True/, 3),
            'the app saw ReadTimeout, a TimeoutError');
        $ngx->stop;
    };

    subtest "$mode: a location's own wsgi_read_timeout" => sub {
        my $ngx = NginxRunner->new(http => $http, server => $server);
        my ($status) = fetch($ngx, '/two_seconds');
        is($status, 504, '1 s inherited from http: 504');
        my ($status2, $body2) = fetch($ngx, '/two_seconds_allowed');
        is($status2, 200, '3 s in the location: 200');
        is($body2, "done in 2 s\n", 'the body');
        $ngx->stop;
    };
}

# Inline, a signal interrupts the call: a worker without thread pools gets
# it from its watcher process (and stays single-threaded), one with pools
# from its watchdog thread.
my %inline_backends = (
    'watcher process' => '',
    'watchdog thread' => 'wsgi_threads 2;',
);

for my $backend (sort keys %inline_backends) {
    my $http = "wsgi_read_timeout 1s; $inline_backends{$backend}";
    my $server = '
        location /pid { wsgi_threads 0; wsgi_pass timeouts:pid; }
        location /sleepy { wsgi_threads 0; wsgi_pass timeouts:sleepy; }
        location /stuck_in_c { wsgi_threads 0; wsgi_pass timeouts:stuck_in_c; }';

    subtest "inline ($backend): time.sleep is cut short: 504 at once, the worker serves on" => sub {
        my $ngx = NginxRunner->new(master => 1, http => $http, server => $server);
        my $pid = pid_of($ngx);
        my ($status, undef, $took) = fetch($ngx, '/sleepy?30', 10);
        is($status, 504, 'answered 504');
        cmp_ok($took, '<', 2, sprintf('within 2 s (%.2f s), not 30', $took));
        like($ngx->error_log, qr/did not return within wsgi_read_timeout \(1000 ms\): ReadTimeout is raised in it; the stack of the call:\n.*in sleepy\n\s+time\.sleep/,
            'the stack');
        is(pid_of($ngx), $pid, 'the same worker serves the next request');
        my ($threads) = (`cat /proc/$pid/status` =~ /^Threads:\s+(\d+)/m);
        if ($backend eq 'watcher process') {
            is($threads, 1, 'the worker has one thread');
            like(`ps -o args= --ppid $pid`, qr/nginx: wsgi watcher/, 'its watcher process');
        } else {
            cmp_ok($threads, '>', 2, "the worker has its pool's threads and the watchdog's ($threads)");
        }
        $ngx->stop;
    };

    subtest "inline ($backend): a call no signal reaches gets the worker replaced at once" => sub {
        my $ngx = NginxRunner->new(master => 1, http => $http, server => $server);
        my $pid = pid_of($ngx);
        ok($pid, "the worker: $pid");
        my ($status, undef, $took) = fetch($ngx, '/stuck_in_c?30', 10);
        cmp_ok($took, '<', 5, sprintf('the request ended within 5 s (%.2f s), not 30', $took));
        isnt($status, 200, 'not answered by the app');
        my $next;
        for (1 .. 40) {
            $next = pid_of($ngx);
            last if $next;
            sleep 0.1;
        }
        ok($next && $next != $pid, "a fresh worker ($next) serves the next request");
        like($ngx->error_log,
            qr/\[alert\].*wsgi: app "timeouts:stuck_in_c" is stuck: its call has not returned 2 s after wsgi_read_timeout \(1000 ms\) interrupted it; the event loop is blocked and the worker cannot serve anything: it ends now, and nginx starts a fresh one; its stack follows\n(?:.*\n)*?Stack \(most recent call first\):\n.*line \d+ in stuck_in_c/,
            'the alert, and the stack (from faulthandler)');
        my $how = $backend eq 'watcher process' ? qr/exited on signal 9/ : qr/exited with code 1/;
        like($ngx->error_log, qr/worker process $pid $how/, 'the master saw the worker go');
        $ngx->stop;
    };
}

subtest 'inline, master_process off: a call stuck where no signal reaches is only logged' => sub {
    my $ngx = NginxRunner->new(http => 'wsgi_read_timeout 1s;', server => '
        location /pid { wsgi_pass timeouts:pid; }
        location /stuck_in_c { wsgi_pass timeouts:stuck_in_c; }');
    my $pid = pid_of($ngx);
    my ($status, undef, $took) = fetch($ngx, '/stuck_in_c?4', 10);
    is($status, 504, 'once the sleep ends, 504');
    cmp_ok($took, '>', 3.5, sprintf('after the sleep (%.2f s)', $took));
    like($ngx->error_log,
        qr/\[alert\].*is stuck: its call has not returned.*without a master process \(master_process off\) the worker cannot be replaced/,
        'the alert says it cannot be replaced');
    is(pid_of($ngx), $pid, 'the same process serves on');
    $ngx->stop;
};

subtest 'threads: a call stuck in C: 504 at once, static answers, the worker retires gracefully' => sub {
    # stuck_alert_lingers: the event loop reads the alert before the
    # watchdog moves on; it retires all the same (once it did not, when the
    # watchdog asked only after the alert, and an idle loop slept on).
    my $ngx = NginxRunner->new(master => 1, http => 'wsgi_read_timeout 1s; wsgi_threads 4; ' . hook_line('stuck_alert_lingers'), server => '
        location /pid { wsgi_pass timeouts:pid; }
        location /sleepy_next { wsgi_pass timeouts:sleepy_next; }
        location /sleepy { wsgi_pass timeouts:sleepy; }
        location /static { return 200 "static\n"; }');
    my $pid = pid_of($ngx);
    my $start = time;
    my $s = $ngx->get('/sleepy?30');
    sleep 0.2;
    my ($sstatus, $sbody, $stook) = fetch($ngx, '/static');
    is($sbody, "static\n", 'a static location answers meanwhile');
    cmp_ok($stook, '<', 0.2, sprintf('at once (%.1f ms)', $stook * 1000));
    my ($data) = NginxRunner::read_until($s, qr/\A(?!)/, 10);
    my $took = time - $start;
    like($data, qr/\AHTTP\/1\.1 504/, 'answered 504');
    cmp_ok($took, '<', 2, sprintf('within 2 s (%.2f s)', $took));
    like($ngx->error_log, qr/\[error\].*did not return within wsgi_read_timeout \(1000 ms\).*\n(?:.*\n)*?.*in sleepy\n\s+time\.sleep/,
        'the stack, when the 504 goes');
    ok($ngx->wait_log(qr/\[alert\].*is stuck: its call has not returned 2 s after wsgi_read_timeout \(1000 ms\) interrupted it; the worker retires: it finishes what it serves and exits, and nginx starts a fresh one/, 4),
        'the alert: the worker retires');
    ok($ngx->wait_log(qr/worker process $pid exited with code 0/, 5), 'the worker exited, without waiting for the stuck thread');
    my $next = pid_of($ngx);
    ok($next && $next != $pid, "a fresh worker ($next) serves");
    $ngx->stop;
};

subtest 'threads: a next() stuck in C for 1.5 s: 504 at 1 s; close() runs when it returns' => sub {
    my $ngx = NginxRunner->new(http => 'wsgi_read_timeout 1s; wsgi_threads 4;', server => '
        location /pid { wsgi_pass timeouts:pid; }
        location /sleepy_next { wsgi_pass timeouts:sleepy_next; }');
    my ($status, $body, $took) = fetch($ngx, '/sleepy_next?1.5');
    is($status, 504, 'answered 504');
    cmp_ok($took, '<', 1.45, sprintf('before the sleep ends (%.2f s)', $took));
    unlike($body, qr/late/, 'nothing of what the thread produced later');
    ok($ngx->wait_log(qr/close\(\) ran/, 3), 'close() ran');
    ok(pid_of($ngx), 'the worker serves on');
    unlike($ngx->error_log, qr/is stuck/, 'not stuck: it returned within the grace period');
    $ngx->stop;
};

done_testing;

# The panic guard: a Rust panic in any function nginx calls ends what it
# was doing (the request: 500, or an aborted response once the head is out;
# a directive: refused), is logged at alert with where it happened, and
# never kills the worker. The panics come from fault points only the test
# build has (wsgi_test_hook, src/test_hooks.rs). t/threads/014-panics.t
# runs the same with every app on a pool thread, where the thread-mode
# entry points (wake-up, queue timer, read event, busy timer, the pool
# thread itself) are reached too.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use NginxRunner;
use NginxCompat qw(test_hooks);
use Test::More;
use Time::HiRes qw(time sleep);

plan skip_all => "the panics come from the test build's fault points (wsgi_test_hook), which this module lacks"
    unless test_hooks();

my $threads = $ENV{TEST_NGINX_WSGI_THREADS};

# GET $path on a new connection; returns (status, whole response).
sub fetch {
    my ($ngx, $path, %opts) = @_;
    my $s = $ngx->get($path, %opts);
    my ($data) = NginxRunner::read_until($s, qr/\A(?!)/, $opts{timeout} // 10);
    my ($status) = $data =~ m{\AHTTP/1\.1 (\d{3})};
    return ($status // 0, $data);
}

# The worker is the one that started, and it serves the next request.
sub serves_on {
    my ($ngx, $worker) = @_;
    my ($status, $data) = fetch($ngx, '/ok');
    is($status, 200, 'the next request is served');
    is(join(',', $ngx->worker_pids), $worker, "by the same worker ($worker): it did not die");
    unlike($ngx->error_log, qr/exited on signal|\[emerg\]/, 'no worker crashed');
}

sub panic_line {
    my ($place, $hook) = @_;
    return qr/\[alert\] .*wsgi: internal error \(panic\) in \Q$place\E: test hook \Q$hook\E at src\/[\w\/]+\.rs:\d+/;
}

my $ok = 'location /ok { wsgi_pass basics:hello; }';

# Starts nginx (a master, one worker) with `$location` beside /ok and the
# other NginxRunner options, runs `$check` against it, then checks that the
# same worker serves on.
sub after_panic {
    my ($location, $check, %opts) = @_;
    my $ngx = NginxRunner->new(master => 1, %opts, server => "$location\n$ok");
    my ($worker) = $ngx->worker_pids;
    $check->($ngx);
    serves_on($ngx, $worker);
    $ngx->stop;
}

for my $case (
    ['the content handler', 'panic_in_content_handler', 'PanicInContentHandler'],
    ['the request body handler', 'panic_in_body_handler', 'PanicInBodyHandler'],
) {
    my ($place, $hook, $name) = @$case;
    subtest "a panic in $place: 500, an alert, the worker serves on" => sub {
        after_panic("location /panic { wsgi_test_hook $hook; wsgi_pass basics:hello; }", sub {
            my ($ngx) = @_;
            my ($status) = fetch($ngx, '/panic');
            is($status, 500, 'answered 500');
            ok($ngx->wait_log(panic_line($place, $name), 2), 'error_log says where, at alert');
            like($ngx->error_log, qr/test hook \Q$name\E.*client: 127\.0\.0\.1, server: , request: "GET \/panic /,
                "with the request's context");
        });
    };
}

subtest 'a panic in the write event handler once the head is out: the response is aborted' => sub {
    # A slow client makes the response wait for the write event. In thread
    # mode nothing spills to a temp file (wsgi_max_temp_file_size 0): else
    # the whole response could reach nginx before the first write event,
    # and nginx's own writer, not the module's handler, would send it.
    after_panic('location /big { wsgi_test_hook panic_in_write_event; wsgi_max_temp_file_size 0; wsgi_pass streaming:big_stream; }', sub {
        my ($ngx) = @_;
        my $s = $ngx->get('/big?64', rcvbuf => 16384);
        sleep 0.3;
        my ($data) = NginxRunner::read_until($s, qr/\A(?!)/, 5);
        like($data, qr/\AHTTP\/1\.1 200 /, 'the head went out');
        unlike($data, qr/\r\n0\r\n\r\n\z/, 'the body has no last chunk: the client cannot take it as whole');
        ok($ngx->wait_log(panic_line('the write event handler', 'PanicInWriteEvent'), 2), 'error_log says where');
    }, listen_opts => 'sndbuf=16k');
};

subtest 'a panic in init_process: an alert, 500s with the reason, no respawn loop' => sub {
    my $ngx = NginxRunner->new(master => 1, http => 'wsgi_test_hook panic_in_init_process;', server => $ok);
    my ($worker) = $ngx->worker_pids;
    ok($ngx->wait_log(panic_line('init_process', 'PanicInInitProcess'), 2), 'error_log says where');
    my ($status) = fetch($ngx, '/ok');
    is($status, 500, 'Python did not start: 500');
    like($ngx->error_log, qr/\[error\] .*wsgi: Python is not running in this worker/, 'and why');
    sleep 0.3;
    is(join(',', $ngx->worker_pids), $worker, 'the same worker: not respawned');
    $ngx->stop;
};

subtest 'a panic in exit_process: an alert, and nginx exits' => sub {
    my $ngx = NginxRunner->new(master => 1, http => 'wsgi_test_hook panic_in_exit_process;', server => $ok);
    my ($status) = fetch($ngx, '/ok');
    is($status, 200, 'served');
    ok($ngx->quit, 'nginx exited');
    like($ngx->error_log, panic_line('exit_process', 'PanicInExitProcess'), 'error_log says where');
    unlike($ngx->error_log, qr/exited on signal/, 'the worker did not crash');
};

subtest 'a panic in a directive handler: nginx -t refuses the configuration' => sub {
    my $root = ($ENV{PWD} // '.') . "/t/servroot_panic";
    system('mkdir', '-p', "$root/conf", "$root/logs");
    open my $conf, '>', "$root/conf/nginx.conf" or die $!;
    print $conf <<"_EOC_";
load_module $ENV{TEST_NGINX_LOAD_MODULES};
error_log logs/error.log;
events {}
http { server { location / { wsgi_test_hook panic_in_directive; } } }
_EOC_
    close $conf;
    my $out = `$ENV{TEST_NGINX_BINARY} -p $root/ -c $root/conf/nginx.conf -t 2>&1`;
    isnt($?, 0, 'nginx -t fails');
    like($out, qr/\[alert\] wsgi: internal error \(panic\) in the "wsgi_test_hook" directive: test hook PanicInDirective at src\/[\w\/]+\.rs:\d+ in \S+nginx\.conf:4/,
        'and says where, with the line of nginx.conf');
};

SKIP: {
    skip 'the thread-mode entry points: t/threads/014-panics.t', 5 if !$threads;

    subtest 'thread mode: a panic in the wake-up handler before the head: 500, the app stops' => sub {
        after_panic('location /panic { wsgi_test_hook panic_in_wake_up; wsgi_pass basics:hello; }', sub {
            my ($ngx) = @_;
            my ($status) = fetch($ngx, '/panic');
            is($status, 500, 'answered 500');
            ok($ngx->wait_log(panic_line('the wake-up handler', 'PanicInWakeUp'), 2), 'error_log says where');
        });
    };

    subtest 'thread mode: a panic on the pool thread once the head is handed over: the response is aborted' => sub {
        after_panic('location /panic { wsgi_test_hook panic_in_pool_thread; wsgi_pass basics:hello; }', sub {
            my ($ngx) = @_;
            my ($status, $data) = fetch($ngx, '/panic');
            # The head may or may not have reached the socket before the abort.
            ok($status == 0 || $status == 200, "no error page in place of the app's head (status $status)");
            unlike($data, qr/Hello/, 'no body: the connection was closed');
            ok($ngx->wait_log(panic_line('a pool thread', 'PanicInPoolThread'), 2), 'error_log says where');
            like($ngx->error_log, qr/PanicInPoolThread.*request: "GET \/panic /, "with the request's context");
        });
    };

    subtest 'thread mode: a panic in the queue timer: 500, the app never runs for it' => sub {
        my $location = 'location /sleep { wsgi_threads 1; wsgi_queue_timeout 200ms; '
            . 'wsgi_test_hook panic_in_queue_timer; wsgi_pass threads:sleep; }';
        after_panic($location, sub {
            my ($ngx) = @_;
            my $running = $ngx->get('/sleep?0.6');
            sleep 0.1;
            my ($status) = fetch($ngx, '/sleep?0.01');
            is($status, 500, 'the queued request: 500');
            ok($ngx->wait_log(panic_line('the queue timer', 'PanicInQueueTimer'), 2), 'error_log says where');
            my ($data) = NginxRunner::read_until($running, qr/\A(?!)/, 5);
            like($data, qr/\AHTTP\/1\.1 200 /, 'the running request completes');
            sleep 0.2;
            unlike($ngx->error_log, qr/sleep: start 0\.01/, 'the app never ran for the queued one');
        });
    };

    subtest 'thread mode: a panic in the read event handler when the client leaves' => sub {
        after_panic('location /late { wsgi_test_hook panic_in_client_read; wsgi_pass threads:sleep_then_yield; }', sub {
            my ($ngx) = @_;
            my $s = $ngx->get('/late?0.5');
            sleep 0.2;
            close $s;
            ok($ngx->wait_log(panic_line('the read event handler', 'PanicInClientRead'), 2), 'error_log says where');
            ok($ngx->wait_log(qr/sleep_then_yield: close\(\) called/, 3), "the app stops and its close() runs");
        });
    };

    subtest 'thread mode: a panic in the busy timer: an alert, the request completes' => sub {
        after_panic('location /sleep { wsgi_pass threads:sleep; }', sub {
            my ($ngx) = @_;
            my ($status) = fetch($ngx, '/sleep?0.4');
            is($status, 200, 'the request completes');
            ok($ngx->wait_log(panic_line('the busy timer', 'PanicInBusyTimer'), 2), 'error_log says where');
        }, http => 'wsgi_test_hook panic_in_busy_timer;');
    };
}

done_testing;

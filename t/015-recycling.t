# Worker recycling and warm start (issue 13): wsgi_max_requests (with its
# jitter) and wsgi_max_rss retire a worker gracefully, and nginx's master
# starts a fresh one; no request fails while workers recycle, with one
# worker or several, inline or with requests queued for a pool thread; a
# keep-alive connection is closed after the response that made its worker
# retire; without a master the worker only logs and serves on. Warm start:
# every app is imported when the worker starts, and an import that fails
# there is logged and tried again at its first request.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use NginxRunner;
use Test::More;
use Time::HiRes qw(time sleep);

# Each subtest says whether its apps run inline or on pool threads.
delete $ENV{TEST_NGINX_WSGI_THREADS};

my $retires = qr/the worker retires: it finishes what it serves and exits, and nginx starts a fresh one/;

# GET $path on a new "Connection: close" connection; returns (status, body).
sub fetch {
    my ($ngx, $path) = @_;
    return read_response($ngx->get($path), 10);
}

# Reads one response whose head has a Content-Length, leaving the
# connection open; returns (status, body), (0, what came) if incomplete.
sub read_response {
    my ($s, $timeout) = @_;
    my $deadline = time + $timeout;
    my $data = '';
    while (time < $deadline) {
        if ($data =~ /\A(HTTP\/1\.1 (\d{3}) [^\r]*\r\n(.*?)\r\n\r\n)/s) {
            my ($head_len, $status, $fields) = (length $1, $2, $3);
            my ($len) = $fields =~ /^Content-Length: (\d+)\r?$/mi;
            return ($status, substr($data, $head_len, $len))
                if defined $len && length($data) >= $head_len + $len;
        }
        my $chunk = NginxRunner::read_some($s, 0.05);
        next if !defined $chunk;
        last if $chunk eq '';
        $data .= $chunk;
    }
    return (0, $data);
}

# Sends $n requests for $path one after the other, each on a new
# connection; returns (failures, {pid => requests it answered}). A failure
# is any answer but 200 with the app's body.
sub sequential {
    my ($ngx, $path, $n, $pause) = @_;
    my ($failures, %pids) = (0);
    for my $i (1 .. $n) {
        my ($status, $body) = fetch($ngx, $path);
        if ($status == 200 && $body =~ /\Apid (\d+)\b/) {
            $pids{$1}++;
        } else {
            $failures++;
            diag("request $i: $status " . substr($body, 0, 200));
        }
        sleep $pause if $pause;
    }
    return ($failures, \%pids);
}

# Sends $n requests at once, each on its own connection; returns
# (failures, {pid => requests it answered}).
sub burst {
    my ($ngx, $path, $n) = @_;
    my @socks = map { $ngx->get($path) } 1 .. $n;
    my ($failures, %pids) = (0);
    for my $s (@socks) {
        my ($status, $body) = read_response($s, 10);
        if ($status == 200 && $body =~ /\Apid (\d+)\n\z/) {
            $pids{$1}++;
        } else {
            $failures++;
            diag("burst: $status " . substr($body, 0, 200));
        }
    }
    return ($failures, \%pids);
}

# The master's own lines: which workers exited (pid => code) and which it started.
sub master_lines {
    my ($log) = @_;
    my %exited = $log =~ /worker process (\d+) exited with code (\d+)/g;
    my @started = $log =~ /start worker process (\d+)/g;
    return (\%exited, \@started);
}

# Waits up to 5 s for every worker that retired to exit, and for the
# master to have started that many fresh ones.
sub wait_replaced {
    my ($ngx, $retired) = @_;
    my $deadline = time + 5;
    while (time < $deadline) {
        my ($exited, $started) = master_lines($ngx->error_log);
        return if keys %$exited >= $retired && @$started >= $ngx->{workers} + $retired;
        sleep 0.05;
    }
}

# The pids of the worker processes that logged $re.
sub pids_logging {
    my ($log, $re) = @_;
    return map { /\] (\d+)#\d+: / ? $1 : () } grep { $_ =~ $re } split /\n/, $log;
}

# What every recycling scenario checks in error_log: each worker that
# retired exited with code 0 and was replaced, and nothing crashed. Waits
# up to 2 s for $expect workers to have logged $why: a client that has its
# whole response (Content-Length) may read error_log before the request's
# end is logged.
sub retired_cleanly {
    my ($ngx, $why, $expect) = @_;
    my $deadline = time + 2;
    sleep 0.05 while time < $deadline && pids_logging($ngx->error_log, $why) < ($expect // 1);
    my @retired = pids_logging($ngx->error_log, $why);
    wait_replaced($ngx, scalar @retired);
    my $log = $ngx->error_log;
    my ($exited, $started) = master_lines($log);
    is(scalar(grep { ($exited->{$_} // -1) == 0 } @retired), scalar @retired,
        'every worker that retired exited with code 0');
    cmp_ok(scalar @$started, '>=', $ngx->{workers} + @retired, 'the master started a fresh worker for each');
    is(scalar(grep { $_ != 0 } values %$exited), 0, 'no worker exited with another code');
    unlike($log, qr/exited on signal|\[alert\]|\[crit\]|\[emerg\]/, 'no crash, no alert');
    return @retired;
}

# How many times the master replaced each of its first workers. It starts
# them in the order of their slots; when it reaps workers that exited, it
# starts their replacements in the order of their slots too (two may exit
# before it reaps either).
sub replacements_per_slot {
    my ($log) = @_;
    my (@slots, %slot_of, @exited);
    for my $line (split /\n/, $log) {
        if ($line =~ /start worker process (\d+)/) {
            if (!@exited) {
                push @slots, 0;
                $slot_of{$1} = $#slots;
                next;
            }
            @exited = sort { $a <=> $b } @exited;
            my $slot = shift @exited;
            $slot_of{$1} = $slot;
            $slots[$slot]++;
        } elsif ($line =~ /worker process (\d+) exited with code/ && defined $slot_of{$1}) {
            push @exited, $slot_of{$1};
        }
    }
    return @slots;
}

# 300 sequential requests under wsgi_max_requests 50: with 2 workers, on a
# shared listening socket (the kernel may favour one worker: the other may
# never reach 50), and with "reuseport" (a socket per worker, connections
# spread by their ports: each worker serves about 150 and retires at least
# twice).
for my $case (['2 workers', 2, ''], ['2 workers, reuseport', 2, '', 'reuseport'], ['1 worker', 1, ''],
              ['2 workers, reuseport, thread mode', 2, 'wsgi_threads 4;', 'reuseport']) {
    my ($name, $workers, $threads, $reuseport) = @$case;
    subtest "wsgi_max_requests 50, 300 sequential requests, $name: workers retire after 50, no request fails" => sub {
        my $ngx = NginxRunner->new(master => 1, workers => $workers, listen_opts => $reuseport,
            http => 'wsgi_max_requests 50;',
            server => "$threads location /pid { wsgi_pass recycling:pid; }");
        my ($failures, $pids) = sequential($ngx, '/pid', 300);
        is($failures, 0, 'no request failed');
        cmp_ok(scalar(keys %$pids), '>=', 6, scalar(keys %$pids) . ' workers answered');
        my $served = qr/\[notice\] .*wsgi: this worker has served 50 requests \(wsgi_max_requests 50\); $retires$/;
        # 300 = 50 x 6, or 50 x 5 and the last two workers 50 between them.
        my @retired = retired_cleanly($ngx, $served, 6);
        cmp_ok(scalar @retired, '>=', 5, scalar(@retired) . ' workers retired after 50 requests');
        is(scalar(grep { $_ == 50 } map { $pids->{$_} // 0 } @retired), scalar @retired,
            'each answered exactly 50 requests');
        my @per_slot = replacements_per_slot($ngx->error_log);
        is(scalar @per_slot, $workers, "$workers worker slot(s)");
        if ($workers == 1 || $reuseport) {
            is(scalar(grep { $_ >= 2 } @per_slot), $workers,
                'each worker slot was replaced at least twice (' . join(', ', @per_slot) . ')');
        }
        like($ngx->error_log, qr/\[notice\] .*gracefully shutting down/, "nginx's own graceful shutdown");
        $ngx->stop;
    };
}

subtest 'thread mode: bursts of requests, some queued for a thread, while workers retire: all answered' => sub {
    my $ngx = NginxRunner->new(master => 1, workers => 2,
        http => 'wsgi_max_requests 10;',
        server => 'wsgi_threads 4; location /sleep { wsgi_pass recycling:sleep_pid; }');
    my ($failures, %pids) = (0);
    for (1 .. 8) {
        # 16 at once, to a worker with 4 threads: when its 10th ends and it
        # retires, at most 4 run and the rest wait in its queue.
        my ($f, $p) = burst($ngx, '/sleep?0.1', 16);
        $failures += $f;
        $pids{$_} += $p->{$_} for keys %$p;
    }
    is($failures, 0, 'all 128 requests answered 200');
    my $served = qr/\[notice\] .*wsgi: this worker has served \d+ requests \(wsgi_max_requests 10\); $retires$/;
    my @retired = retired_cleanly($ngx, $served, 8);
    cmp_ok(scalar @retired, '>=', 5, scalar(@retired) . ' workers retired');
    cmp_ok(scalar(keys %pids), '>=', 6, scalar(keys %pids) . ' workers answered');
    my @answered = map { $pids{$_} // 0 } @retired;
    my $queued = grep { $_ > 10 + 4 } @answered;
    cmp_ok($queued, '>=', 1, "$queued retiring workers answered more than 10 + 4 (" . join(' ', @answered)
        . '): requests that waited in its queue as it retired');
    $ngx->stop;
};

subtest 'wsgi_max_requests 10 jitter=5: each worker retires after 10 to 15 requests' => sub {
    my $ngx = NginxRunner->new(master => 1, http => 'wsgi_max_requests 10 jitter=5;',
        server => 'location /pid { wsgi_pass recycling:pid; }');
    my ($failures, $pids) = sequential($ngx, '/pid', 120);
    is($failures, 0, 'no request failed');
    retired_cleanly($ngx, qr/has served \d+ requests/, 8);
    my @counts = $ngx->error_log =~ /\[notice\] .*wsgi: this worker has served (\d+) requests \(wsgi_max_requests 10 jitter=5\); $retires$/mg;
    cmp_ok(scalar @counts, '>=', 7, scalar(@counts) . ' retirements: ' . join(' ', @counts));
    is(scalar(grep { $_ >= 10 && $_ <= 15 } @counts), scalar @counts, 'each between 10 and 15 requests');
    my %said = map { /\] (\d+)#\d+: .*has served (\d+) requests/ ? ($1 => $2) : () } split /\n/, $ngx->error_log;
    is(scalar(grep { ($pids->{$_} // 0) == $said{$_} } keys %said), scalar(keys %said), 'as many as each worker answered');
    my %distinct = map { $_ => 1 } @counts;
    cmp_ok(scalar keys %distinct, '>=', 2, 'not all after the same number');
    $ngx->stop;
};

for my $threads ('', 'wsgi_threads 4;') {
    my $mode = $threads ? 'thread mode' : 'inline';
    subtest "wsgi_max_rss 100m, an app that leaks 20 MiB a request, $mode: recycled, no request fails" => sub {
        my $ngx = NginxRunner->new(master => 1, http => 'wsgi_max_rss 100m;',
            server => "$threads location /leak { wsgi_pass recycling:leak; }");
        my ($failures, %pids, %held) = (0);
        for my $i (1 .. 30) {
            my ($status, $body) = fetch($ngx, '/leak');
            if ($status == 200 && $body =~ /\Apid (\d+) leaked (\d+)\n\z/) {
                $pids{$1}++;
                $held{$1} = $2;
            } else {
                $failures++;
                diag("request $i: $status " . substr($body, 0, 200));
            }
            sleep 0.1;
        }
        is($failures, 0, 'no request failed');
        cmp_ok(scalar keys %pids, '>=', 3, scalar(keys %pids) . ' workers answered');
        my @over = $ngx->error_log =~ /\[warn\] .*wsgi: this worker's memory, RSS (\d+\.\d) MiB, is over wsgi_max_rss \(100\.0 MiB\); $retires$/mg;
        cmp_ok(scalar @over, '>=', 2, 'error_log says why, at warn, with the figure: ' . join(', ', map { "$_ MiB" } @over));
        is(scalar(grep { $_ >= 100 } @over), scalar @over, 'each figure over the limit');
        my ($most) = sort { $b <=> $a } values %held;
        cmp_ok($most, '<', 200, "no worker grew far past the limit (at most $most MiB leaked)");
        retired_cleanly($ngx, qr/is over wsgi_max_rss/);
        $ngx->stop;
    };
}

subtest 'master_process off: the worker cannot be replaced, so it says so once and serves on' => sub {
    my $ngx = NginxRunner->new(http => 'wsgi_max_requests 5;', server => 'location /pid { wsgi_pass recycling:pid; }');
    my ($pid) = $ngx->worker_pids;
    my ($failures, $pids) = sequential($ngx, '/pid', 20);
    is($failures, 0, 'all 20 requests answered');
    is(join(',', keys %$pids), $pid, "all by the one process ($pid)");
    ok(kill(0, $pid), 'which still runs');
    my @lines = $ngx->error_log =~ /(\[notice\] .*wsgi: this worker has served \d+ requests .*)$/mg;
    is(scalar @lines, 1, 'error_log says it once');
    like($lines[0] // '', qr/has served 5 requests \(wsgi_max_requests 5\); without a master process \(master_process off\) the worker cannot be replaced$/,
        'that the worker cannot be replaced');
    unlike($ngx->error_log, qr/gracefully shutting down|exiting/, 'nginx does not quit');
    $ngx->stop;
};

for my $threads ('', 'wsgi_threads 2;') {
    my $mode = $threads ? 'thread mode' : 'inline';
    subtest "keep-alive, $mode: the response that makes the worker retire is whole, then the connection is closed" => sub {
        my $ngx = NginxRunner->new(master => 1, http => 'wsgi_max_requests 3;',
            server => "$threads location /pid { wsgi_pass recycling:pid; }");
        my ($worker) = $ngx->worker_pids;
        my $s = $ngx->client;
        for my $i (1 .. 3) {
            print $s "GET /pid HTTP/1.1\r\nHost: localhost\r\n\r\n";
            my ($status, $body) = read_response($s, 5);
            is($status, 200, "request $i on the connection: 200");
            is($body, "pid $worker\n", "request $i: its whole body, from the worker ($worker)");
        }
        is(NginxRunner::read_some($s, 3), '', 'then the connection is closed, with nothing more');
        my ($status, $body) = fetch($ngx, '/pid');
        is($status, 200, 'a new connection is served');
        like($body, qr/\Apid (?!$worker\n)\d+\n\z/, 'by a fresh worker');
        retired_cleanly($ngx, qr/has served 3 requests/);
        $ngx->stop;
    };
}

# The first request to /slow, 2 s after nginx started or reloaded, from a
# worker that imported the app when it started.
sub first_request_is_warm {
    my ($ngx, $since, $when) = @_;
    sleep 2;
    my @workers = $ngx->worker_pids;
    my %imported = map { $_ => 1 } $ngx->error_log =~ /^slow_import: imported by pid (\d+)$/mg;
    is(scalar(grep { $imported{$_} } @workers), scalar @workers, "$when, each worker imported the app as it started (@workers)");
    my $t = time;
    my ($status, $body) = fetch($ngx, '/slow');
    my $took = time - $t;
    is($status, 200, 'the first request: 200');
    cmp_ok($took, '<', 0.5, sprintf('in %.3f s', $took));
    my ($pid, $imported_at) = $body =~ /\Apid (\d+) imported_at (\S+)/;
    ok($pid && grep({ $_ == $pid } @workers), 'from one of those workers');
    cmp_ok($imported_at // 0, '>', $since, "which imported the app $when");
    cmp_ok($imported_at // 0, '<', $t, 'before the request');
}

subtest 'warm start: an app whose import takes 1 s answers the first request, 2 s after a start or a reload, at once' => sub {
    my $started = time;
    my $ngx = NginxRunner->new(master => 1, workers => 2, server => 'location /slow { wsgi_pass slow_import; }');
    first_request_is_warm($ngx, $started, 'after the start');
    my $reloaded = time;
    system($ENV{TEST_NGINX_BINARY}, '-p', "$ngx->{root}/", '-c', "$ngx->{root}/conf/nginx.conf", '-s', 'reload') == 0
        or die 'reload failed';
    first_request_is_warm($ngx, $reloaded, 'after the reload');
    unlike($ngx->error_log, qr/\[error\]|\[alert\]/, 'no error');
    $ngx->stop;
};

for my $threads ('', 'wsgi_threads 2;') {
    my $mode = $threads ? 'thread mode' : 'inline';
    subtest "warm start, $mode: an app that fails to import is logged at the start, and tried again at its first request (500)" => sub {
        my $ngx = NginxRunner->new(master => 1, server => "$threads
            location /broken { wsgi_pass broken_import; }
            location /pid { wsgi_pass recycling:pid; }");
        ok($ngx->wait_log(qr/\[error\] .*wsgi: cannot load app "broken_import:application" at the worker's start \(it is tried again at its first request\):/, 3),
            "error_log: the app cannot load, at the worker's start");
        my $log = $ngx->error_log;
        like($log, qr/ModuleNotFoundError: No module named 'this_module_does_not_exist'/, 'with the traceback');
        unlike($log, qr/cannot load app "broken_import:application"(?! at the worker's start)/, 'no request has tried it yet');
        my ($ok) = fetch($ngx, '/pid');
        is($ok, 200, 'the other app serves');
        my ($status) = fetch($ngx, '/broken');
        is($status, 500, 'the first request: 500');
        ok($ngx->wait_log(qr/\[error\] .*wsgi: cannot load app "broken_import:application"(?! at the worker's start).*/, 2),
            'error_log: tried again at the request, and it failed again');
        like($ngx->error_log, qr/\[error\] \d+#\d+: \*\d+ wsgi: cannot load app "broken_import:application":\n(?:.*\n)*?ModuleNotFoundError: .*, client: 127\.0\.0\.1, server: , request: "GET \/broken /,
            "with its traceback and the request's context");
        unlike($ngx->error_log, qr/exited on signal|\[alert\]/, 'no crash');
        $ngx->stop;
    };
}

# nginx's graceful exit waits for the requests in flight only while they
# hold a timer: a stream that gave the event loop a turn must hold one too.
for my $threads ('', 'wsgi_threads 2;') {
    my $mode = $threads ? 'thread mode' : 'inline';
    subtest "nginx -s quit during a long stream to a fast reader, $mode: the stream ends whole, then the worker exits" => sub {
        my $ngx = NginxRunner->new(master => 1, server => "$threads location /big { wsgi_pass streaming:big_stream; }");
        my $s = $ngx->get('/big?512', version => '1.0');  # 32 MiB; the body ends with the connection
        my $data = '';
        while (length($data) < (1 << 20)) {  # the first MiB
            my $chunk = NginxRunner::read_some($s, 5);
            last if !defined $chunk || $chunk eq '';
            $data .= $chunk;
        }
        system($ENV{TEST_NGINX_BINARY}, '-p', "$ngx->{root}/", '-c', "$ngx->{root}/conf/nginx.conf", '-s', 'quit') == 0
            or die 'quit failed';
        my ($rest) = NginxRunner::read_until($s, qr/\A(?!)/, 20);
        my (undef, $body) = split /\r\n\r\n/, $data . $rest, 2;
        is(length($body // ''), 512 * 65536, 'every byte of the stream arrived');
        ok($ngx->wait_log(qr/big_stream: close\(\) after 512 chunks/, 5), 'the app made every chunk, and close() ran');
        ok($ngx->wait_log(qr/\[notice\] .*: exit\n/, 5), 'nginx exited');
        unlike($ngx->error_log, qr/open socket|\[alert\]/, 'no socket left open at exit, no alert');
        $ngx->{stopped} = 1;
    };
}

done_testing;

# wsgi_status: the module's figures for every worker, as JSON and in
# Prometheus' text format (parsed by prometheus_client), after a known mix
# of requests over two workers; they survive a reload.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use NginxRunner;
use Test::More;
use Time::HiRes ();

delete $ENV{TEST_NGINX_WSGI_THREADS};
my $python = "$ENV{TEST_NGINX_VENV}/bin/python";

sub get_status {
    my ($ngx, $query) = @_;
    my ($status, $body) = NginxRunner::response($ngx->get("/status$query"));
    return ($status, $body);
}

# The page's figures as Python sees them: `what` is Python code over `d`
# (the JSON) or `m` (Prometheus: {(name, labels...): value}).
sub ask_python {
    my ($page, $code) = @_;
    my $file = "/tmp/ngx_wsgi_status_$$";
    open my $f, '>', $file or die $!;
    print $f $page;
    close $f;
    my $out = `$python - '$file' <<'PY'
import json, sys
page = open(sys.argv[1]).read()
try:
    d = json.loads(page)
except ValueError:
    d = None
from prometheus_client.parser import text_string_to_metric_families
m = {}
if d is None:
    for family in text_string_to_metric_families(page):
        for s in family.samples:
            m[(s.name,) + tuple(sorted(s.labels.items()))] = s.value
$code
PY`;
    unlink $file;
    chomp $out;
    return $out;
}

my $ngx = NginxRunner->new(
    master => 1, workers => 2,
    server => '
        location /hello { wsgi_pass basics:hello; }
        location /fail { wsgi_pass failing:raises; }
        location /sleep { wsgi_threads 1 max_queue=0; wsgi_pass threads:sleep; }
        location /timeout { wsgi_threads 1; wsgi_read_timeout 300ms; wsgi_pass threads:sleep; }
        location /status { wsgi_status; }');

my @mix = ('/hello') x 5;
NginxRunner::response($ngx->get($_)) for @mix;
my ($fail) = NginxRunner::response($ngx->get('/fail'));
is($fail, 500, 'an app that raises: 500');
# One thread and no queue per worker: of three sleepers at once, at least
# one finds its worker's thread busy (503); the page must count as many.
my @sleepers = map { $ngx->get('/sleep?0.5') } 1 .. 3;
my @codes = map { (NginxRunner::response($_))[0] } @sleepers;
my $refused = grep { $_ == 503 } @codes;
my $slept = grep { $_ == 200 } @codes;
cmp_ok($refused, '>=', 1, "a sleeper found its worker's one thread busy: 503 ($refused)");
is($refused + $slept, 3, 'the others slept');
# An app past wsgi_read_timeout, then, pipelined on the same connection
# (so in the same worker, whose one thread still sleeps), a request that
# waits for that thread and whose client leaves meanwhile: 499. (Sent on
# a connection of its own, it could reach the other worker's free thread.)
my $c = $ngx->client;
print $c "GET /timeout?2 HTTP/1.1\r\nHost: localhost\r\n\r\n"
    . "GET /timeout?0.2 HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";
my ($head) = NginxRunner::read_until($c, qr{\r\n\r\n}, 5);
my ($timed_out) = $head =~ m{\AHTTP/1\.1 (\d{3})};
is($timed_out, 504, 'an app past wsgi_read_timeout: 504');
Time::HiRes::sleep(0.1);
close $c;   # the client leaves while its second request waits for the thread: 499
Time::HiRes::sleep(0.5);

subtest 'JSON: counters after the mix' => sub {
    my ($status, $page) = get_status($ngx, '');
    is($status, 200, 'answered');
    is(ask_python($page, 'print(d["requests_total"]["inline"], d["requests_total"]["threads"])'), '6 5',
        'requests by mode: 5 hello and the failing one inline, 5 for the pools');
    is(ask_python($page, 'print(d["responses_total"]["2xx"], d["responses_total"]["4xx"], d["responses_total"]["5xx"])'),
        (5 + $slept) . ' 1 ' . (2 + $refused), 'responses by class: the 499 of the client that left, 500, 503s, 504');
    is(ask_python($page, 'print(d["read_timeouts_total"], d["client_aborts_total"])'), '1 1',
        'one timeout, one client that left');
    is(ask_python($page, 'print(d["app_exceptions_total"], d["refused_total"]["queue_full"])'), "1 $refused",
        'one exception, the queue-full refusals');
    is(ask_python($page, 'print(len(d["workers"]), sum(w["requests_total"] for w in d["workers"]))'), '2 11',
        'two workers, whose requests add up');
    my @workers = $ngx->worker_pids;
    is(ask_python($page, 'print(" ".join(str(w["pid"]) for w in sorted(d["workers"], key=lambda w: w["pid"])))'),
        join(' ', sort { $a <=> $b } @workers), "the workers' pids");
    is(ask_python($page, 'print(all(4 << 20 < w["resident_memory_bytes"] < 1 << 30 for w in d["workers"]))'), 'True',
        "each worker's RSS (between 4 MiB and 1 GiB: a worker with CPython in it)");
    is(ask_python($page, 'print(d["queue_wait_seconds"]["count"])'), $slept + 1,
        'the queue-wait histogram counts the requests that got a thread (not the one that left the queue)');
    like(ask_python($page, 'print(d["app_seconds"]["count"], d["app_seconds"]["sum"] >= 0.5)'), qr/^\d+ True$/,
        'the app-time histogram has the 0.5 s sleeper');
    is(ask_python($page, 'print(d["threads"], d["queue_length"], d["requests_in_flight"])'), '4 0 0',
        'two pools of one thread per worker, no queue, nothing in flight');
    like(ask_python($page, 'print(d["python_version"])'), qr/^3\.\d+\.\d+$/, 'the Python version');
};

subtest 'Prometheus: the same figures, parsed by prometheus_client' => sub {
    my ($status, $page) = get_status($ngx, '?format=prometheus');
    is($status, 200, 'answered');
    like($page, qr/^# TYPE ngx_wsgi_requests_total counter$/m, 'typed');
    is(ask_python($page, 'print(int(m[("ngx_wsgi_requests_total", ("mode", "inline"))]))'), '6',
        'requests_total{mode="inline"}');
    is(ask_python($page, 'print(int(m[("ngx_wsgi_app_exceptions_total",)]))'), '1', 'app_exceptions_total');
    is(ask_python($page, 'print(int(m[("ngx_wsgi_queue_wait_seconds_count",)]))'), $slept + 1,
        'the queue-wait histogram, as in the JSON');
    like(ask_python($page, 'print(int(m[("ngx_wsgi_app_seconds_bucket", ("le", "+Inf"))]))'), qr/^\d+$/,
        'histogram buckets with le');
};

subtest 'the figures survive a reload' => sub {
    system($ENV{TEST_NGINX_BINARY}, '-p', "$ngx->{root}/", '-c', "$ngx->{root}/conf/nginx.conf", '-s', 'reload') == 0
        or die 'reload failed';
    Time::HiRes::sleep(1.5);
    my (undef, $page) = get_status($ngx, '');
    is(ask_python($page, 'print(d["requests_total"]["inline"] + d["requests_total"]["threads"])'), '11',
        'the requests before the reload are still counted');
};

subtest 'GET and HEAD only' => sub {
    my $s = $ngx->client;
    print $s "POST /status HTTP/1.1\r\nHost: localhost\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
    my ($status) = NginxRunner::response($s);
    is($status, 405, 'POST: 405');
};

$ngx->quit;
done_testing();

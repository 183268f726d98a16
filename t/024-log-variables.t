# $wsgi_app, $wsgi_queue_time and $wsgi_app_time in an access log, as an
# operator logs $upstream_response_time: an app that takes 0.3 s logs
# >= 0.3; a request that waited for the one thread logs its wait; an
# inline app has no queue ("-"), nor has a request the module did not
# answer anything; a request the queue gave up on logs the wait and no app.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use NginxRunner;
use Test::More;
use Time::HiRes ();

delete $ENV{TEST_NGINX_WSGI_THREADS};

sub start {
    my ($locations) = @_;
    return NginxRunner->new(
        http => 'log_format wsgi "$uri $status $wsgi_app $wsgi_queue_time $wsgi_app_time";',
        server => "access_log logs/wsgi.log wsgi; $locations");
}

# The access log's lines, once it has $n of them (within 5 s).
sub log_lines {
    my ($ngx, $n) = @_;
    my @lines;
    for (1 .. 50) {
        if (open my $f, '<', "$ngx->{root}/logs/wsgi.log") {
            @lines = <$f>;
            chomp @lines;
        }
        last if @lines >= $n;
        Time::HiRes::sleep(0.1);
    }
    return @lines;
}

subtest 'inline: the app time, no queue; a location without an app logs "-"' => sub {
    my $ngx = start('location /sleep { wsgi_pass threads:sleep; } location /static { return 200 "x"; }');
    NginxRunner::response($ngx->get('/sleep?0.3'));
    NginxRunner::response($ngx->get('/static'));
    my @lines = log_lines($ngx, 2);
    like($lines[0] // '', qr{^/sleep 200 threads:sleep - (\d+\.\d{3})$}, 'the app, no queue, a time in seconds');
    my ($app) = ($lines[0] // '') =~ / (\d+\.\d{3})$/;
    cmp_ok($app // 0, '>=', 0.3, "a 0.3 s app logs at least 0.3 ($app)");
    cmp_ok($app // 9, '<', 2, 'and not much more');
    is($lines[1], '/static 200 - - -', 'a request the module did not answer: "-"');
    $ngx->stop;
};

subtest 'thread mode: the second of two requests on one thread logs its wait' => sub {
    my $ngx = start('location /sleep { wsgi_threads 1; wsgi_pass threads:sleep; }');
    my @socks = map { $ngx->get('/sleep?0.3') } 1 .. 2;
    NginxRunner::response($_) for @socks;
    my @lines = log_lines($ngx, 2);
    my @queue = map { /^\/sleep 200 threads:sleep (\d+\.\d{3}) \d+\.\d{3}$/ ? $1 : undef } @lines;
    my @app = map { / (\d+\.\d{3})$/ ? $1 : undef } @lines;
    is(scalar(grep { defined } @queue), 2, 'both lines have a queue time') or diag(join "\n", @lines);
    my ($short, $long) = sort { $a <=> $b } map { $_ // 0 } @queue;
    cmp_ok($short, '<', 0.1, "the first did not wait ($short)");
    cmp_ok($long, '>=', 0.25, "the second waited for the first ($long)");
    cmp_ok($_ // 0, '>=', 0.3, "each app took 0.3 s ($_)") for @app;
    $ngx->stop;
};

subtest 'thread mode: a request the queue gave up on logs its wait, and no app time' => sub {
    my $ngx = start('location /sleep { wsgi_threads 1; wsgi_queue_timeout 200ms; wsgi_pass threads:sleep; }');
    my $running = $ngx->get('/sleep?1');
    Time::HiRes::sleep(0.1);
    my ($status) = NginxRunner::response($ngx->get('/sleep?1'));
    is($status, 503, 'the queued request gets 503');
    my @lines = log_lines($ngx, 1);
    like($lines[0] // '', qr{^/sleep 503 threads:sleep 0\.(19\d|2\d\d|3\d\d) -$}, 'its wait, no app time');
    NginxRunner::response($running);
    $ngx->stop;
};

done_testing();

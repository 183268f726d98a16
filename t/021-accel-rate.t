# X-Accel-Limit-Rate: the app sets the rate nginx sends its response at
# (bytes per second), its own body or an X-Accel-Redirect's file; `off`
# lifts the location's limit_rate. Timed, so a raw client (NginxRunner).
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use NginxRunner;
use Test::More;
use Time::HiRes qw(time);

my $KiB = 1024;

my $ngx = NginxRunner->new(server => '
    location /sized { wsgi_pass accel:sized; }
    location /limited { limit_rate 8k; wsgi_pass accel:sized; }
    location /redirect { wsgi_pass accel:redirect; }
    location /protected/ { internal; root html; }');
mkdir "$ngx->{root}/html";
mkdir "$ngx->{root}/html/protected";
open my $f, '>', "$ngx->{root}/html/protected/48k" or die $!;
print $f 'f' x (48 * $KiB);
close $f;

# GETs $path; its status, body length and the seconds it took.
sub timed_get {
    my ($path) = @_;
    my $start = time;
    my ($status, $body) = NginxRunner::response($ngx->get($path), 20);
    return ($status, length $body, time - $start);
}

# nginx's limit lets the first second's worth go at once, then one
# second's worth per second: 48 KiB at 16 KiB/s take 2 s.
subtest "the app's body at the rate the app names" => sub {
    my ($status, $len, $took) = timed_get('/sized?kib=48&rate=16384');
    is($status, 200, 'answered');
    is($len, 48 * $KiB, 'all of it');
    cmp_ok($took, '>', 1.0, sprintf('at the rate: %.2f s', $took));
    my (undef, undef, $fast) = timed_get('/sized?kib=48');
    cmp_ok($fast, '<', 0.5, sprintf('without it, at once: %.2f s', $fast));
};

subtest "an X-Accel-Redirect's file at the rate the app names" => sub {
    my ($status, $len, $took) = timed_get('/redirect?to=/protected/48k&rate=16384');
    is($status, 200, 'answered');
    is($len, 48 * $KiB, 'the whole file');
    cmp_ok($took, '>', 1.0, sprintf('at the rate: %.2f s', $took));
};

subtest "off lifts the location's limit_rate" => sub {
    my ($status, $len, $took) = timed_get('/limited?kib=48&rate=off');
    is($len, 48 * $KiB, 'all of it');
    cmp_ok($took, '<', 0.5, sprintf('at once: %.2f s (limit_rate 8k would take 5 s)', $took));
};

$ngx->stop;
done_testing();

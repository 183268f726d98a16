# t/021-accel-rate.t again, with every app on a pool thread (wsgi_threads 4).
use FindBin;
$ENV{TEST_NGINX_WSGI_THREADS} = 4;
exec $^X, "-I$FindBin::Bin/../lib", "$FindBin::Bin/../021-accel-rate.t" or die "exec: $!";

# t/022-file-wrapper.t again, with every app on a pool thread (wsgi_threads 4).
use FindBin;
$ENV{TEST_NGINX_WSGI_THREADS} = 4;
exec $^X, "-I$FindBin::Bin/../lib", '-MThreadMode', "$FindBin::Bin/../022-file-wrapper.t" or die "exec: $!";

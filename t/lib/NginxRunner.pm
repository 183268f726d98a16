package NginxRunner;

# Runs the built nginx with the module for tests whose client must do what
# Test::Nginx's cannot: read slowly, stop reading, time each chunk, see a
# chunked body cut short. Uses the same TEST_NGINX_* variables as the rest
# of the suite (the Makefile exports them).

use strict;
use warnings;

use File::Path qw(make_path remove_tree);
use IO::Select;
use IO::Socket::INET;
use Socket qw(SOL_SOCKET SO_RCVBUF);
use Time::HiRes qw(time sleep);
use NginxCompat qw(http2_directive);

sub free_port {
    my $s = IO::Socket::INET->new(Listen => 1, LocalAddr => '127.0.0.1', LocalPort => 0, ReuseAddr => 1)
        or die "no free port: $!";
    my $port = $s->sockport;
    close $s;
    return $port;
}

# NginxRunner->new(server => '...', http => '...', listen_opts => 'sndbuf=16k',
#                  master => 1 (a master process: graceful quit, reload),
#                  workers => N (worker_processes, 1),
#                  main => '...' (more lines in the main context),
#                  connections => N (worker_connections, 256))
sub new {
    my ($class, %args) = @_;
    my $self = bless { http => '', server => '', main => '', workers => 1, %args }, $class;
    $self->{port} = free_port();
    $self->{root} = ($ENV{PWD} // '.') . "/t/servroot_runner";
    remove_tree($self->{root});
    make_path("$self->{root}/conf", "$self->{root}/logs");
    my $opts = $args{listen_opts} ? " $args{listen_opts}" : "";
    my $listen = "listen 127.0.0.1:$self->{port}$opts;";
    # h2_port: where HTTP/2 with prior knowledge is served. With `http2 on;`
    # that is the port itself; an nginx before the directive (1.25.1) has
    # HTTP/2 on a listen of its own, which would not serve HTTP/1.x.
    $self->{h2_port} = $self->{port};
    if (!http2_directive() && "$self->{http} $self->{server}" =~ /\bhttp2\s+on\s*;/) {
        s/\bhttp2\s+on\s*;//g for $self->{http}, $self->{server};
        $self->{h2_port} = free_port();
        $listen .= " listen 127.0.0.1:$self->{h2_port}$opts http2;";
    }
    my $user = $> == 0 ? "user root;" : "";
    # EAGAIN mode (t/lib/eagain.c), as Test::Nginx has it: its event
    # method and its preload.
    my $events = $ENV{TEST_NGINX_EVENT_TYPE} ? "use $ENV{TEST_NGINX_EVENT_TYPE};" : "";
    local $ENV{LD_PRELOAD} = $ENV{TEST_NGINX_LD_PRELOAD} if $ENV{TEST_NGINX_LD_PRELOAD};
    # Thread mode (see ThreadMode.pm): apps on a pool thread.
    my $threads = $ENV{TEST_NGINX_WSGI_THREADS} ? "wsgi_threads $ENV{TEST_NGINX_WSGI_THREADS};" : "";
    $threads .= " wsgi_max_temp_file_size $ENV{TEST_NGINX_WSGI_MAX_TEMP_FILE_SIZE};"
        if defined $ENV{TEST_NGINX_WSGI_MAX_TEMP_FILE_SIZE};
    open my $conf, '>', "$self->{root}/conf/nginx.conf" or die $!;
    print $conf <<"_EOC_";
load_module $ENV{TEST_NGINX_LOAD_MODULES};
$user
daemon on;
master_process ${\ ($args{master} ? 'on' : 'off')};
worker_processes $self->{workers};
error_log logs/error.log info;
pid logs/nginx.pid;
$self->{main}
events { worker_connections ${\ ($args{connections} // 256)}; $events }
http {
    access_log off;
    wsgi_python_path $ENV{TEST_NGINX_APPS};
    $threads
    $self->{http}
    server {
        $listen
        $self->{server}
    }
}
_EOC_
    close $conf;
    system($ENV{TEST_NGINX_BINARY}, '-p', "$self->{root}/", '-c', "$self->{root}/conf/nginx.conf") == 0
        or die "nginx did not start";
    for (1 .. 100) {
        my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $self->{port});
        if ($s) { close $s; return $self; }
        sleep 0.05;
    }
    die "nginx is not listening on $self->{port}";
}

sub stop {
    my ($self) = @_;
    return if $self->{stopped}++;
    system($ENV{TEST_NGINX_BINARY}, '-p', "$self->{root}/", '-c', "$self->{root}/conf/nginx.conf", '-s', 'stop');
    for (1 .. 100) {
        last if !-e "$self->{root}/logs/nginx.pid";
        sleep 0.05;
    }
}

# nginx -s quit (graceful): sends it, and waits up to $timeout s (5) for
# nginx to exit; returns whether it did.
sub quit {
    my ($self, $timeout) = @_;
    system($ENV{TEST_NGINX_BINARY}, '-p', "$self->{root}/", '-c', "$self->{root}/conf/nginx.conf", '-s', 'quit') == 0
        or die "quit failed";
    $self->{stopped} = 1;
    my $deadline = time + ($timeout // 5);
    while (time < $deadline) {
        return 1 if !-e "$self->{root}/logs/nginx.pid";
        sleep 0.05;
    }
    return 0;
}

sub DESTROY { $_[0]->stop }

# The pids of the worker processes (the process itself without a master).
# nginx listens before it writes its pid file and a master before it forks
# its workers: wait a moment for both.
sub worker_pids {
    my ($self) = @_;
    for (1 .. 40) {
        my $pid = -e "$self->{root}/logs/nginx.pid" && `cat $self->{root}/logs/nginx.pid`;
        if (!$pid) {
            sleep 0.05;
            next;
        }
        chomp $pid;
        return ($pid) if !$self->{master};
        my @children = grep { /^\d+$/ } split /\s+/, `cat /proc/$pid/task/*/children 2>/dev/null`;
        return @children if @children;
        sleep 0.05;
    }
    return ();
}

# The clock ticks (user + system) process $pid used over the next $seconds s.
sub cpu_ticks_over {
    my ($pid, $seconds) = @_;
    my $ticks = sub {
        open my $f, '<', "/proc/$pid/stat" or return 0;
        my @f = split /\s+/, (<$f> =~ s/^.*\) //r);
        return $f[11] + $f[12];  # utime + stime
    };
    my $before = $ticks->();
    sleep $seconds;
    return $ticks->() - $before;
}

sub error_log { $_[0]->log_file('error.log') }

# logs/access.log, where the server block has `access_log logs/access.log;`.
sub access_log { $_[0]->log_file('access.log') }

sub log_file {
    my ($self, $name) = @_;
    open my $f, '<', "$self->{root}/logs/$name" or return '';
    local $/;
    return <$f>;
}

# Waits up to $timeout s for error_log to match $re; returns whether it did.
sub wait_log {
    my ($self, $re, $timeout) = @_;
    my $deadline = time + $timeout;
    while (time < $deadline) {
        return 1 if $self->error_log =~ $re;
        sleep 0.05;
    }
    return $self->error_log =~ $re;
}

# A connected client socket; rcvbuf => N shrinks its receive buffer.
sub client {
    my ($self, %opts) = @_;
    my $s = IO::Socket::INET->new(Proto => 'tcp') or die $!;
    setsockopt($s, SOL_SOCKET, SO_RCVBUF, pack('i', $opts{rcvbuf})) or die $! if $opts{rcvbuf};
    $s->connect(pack_sockaddr_in($self->{port}, Socket::inet_aton('127.0.0.1'))) or die "connect: $!";
    $s->autoflush(1);
    return $s;
}

sub get {
    my ($self, $path, %opts) = @_;
    my $s = $self->client(%opts);
    my $version = $opts{version} // '1.1';
    print $s "GET $path HTTP/$version\r\nHost: localhost\r\nConnection: close\r\n\r\n";
    return $s;
}

# Reads what arrives within $timeout s (at most $max bytes); '' on EOF.
sub read_some {
    my ($s, $timeout, $max) = @_;
    my $sel = IO::Select->new($s);
    return undef if !$sel->can_read($timeout);
    my $n = sysread($s, my $buf, $max // 65536);
    return defined $n ? $buf : '';
}

# Reads one "Connection: close" response within $timeout s (30); its
# status (0 if none) and body.
sub response {
    my ($s, $timeout) = @_;
    my ($data) = read_until($s, qr/\A(?!)/, $timeout // 30);
    my ($status) = $data =~ m{\AHTTP/1\.1 (\d{3})};
    my (undef, $body) = split /\r\n\r\n/, $data, 2;
    return ($status // 0, $body // '');
}

# Reads until $re matches what was read, or $timeout s pass. Returns the
# data and the time it took.
sub read_until {
    my ($s, $re, $timeout) = @_;
    my $start = time;
    my $data = '';
    while (time - $start < $timeout) {
        my $chunk = read_some($s, 0.05);
        next if !defined $chunk;
        last if $chunk eq '';
        $data .= $chunk;
        return ($data, time - $start) if $data =~ $re;
    }
    return ($data, time - $start);
}

1;

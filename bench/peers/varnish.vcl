# Varnish as bench/run.sh runs it (varnishd -s malloc,256m -p
# feature=+http2, HTTP/1.1 and h2c on one port; no TLS in Varnish itself):
# the built-in VCL's caching rules in front of the loopback origin.
#
# Every fetch tells the origin what accel's forwarded head does: Varnish
# sends X-Forwarded-For and a request id (X-Varnish) itself; the
# scheme and Via are added below.
vcl 4.1;

backend origin {
    .host = "127.0.0.1";
    .port = "@ORIGIN@";
}

sub vcl_backend_fetch {
    set bereq.http.X-Forwarded-Proto = "http";
    if (bereq.http.Via) {
        set bereq.http.Via = bereq.http.Via + ", 1.1 varnish";
    } else {
        set bereq.http.Via = "1.1 varnish";
    }
}

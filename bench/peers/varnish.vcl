# Varnish as bench/run.sh runs it (varnishd -s malloc,256m -p
# feature=+http2, HTTP/1.1 and h2c on one port; no TLS in Varnish itself):
# the built-in VCL's caching rules in front of the loopback origin.
vcl 4.1;

backend origin {
    .host = "127.0.0.1";
    .port = "@ORIGIN@";
}

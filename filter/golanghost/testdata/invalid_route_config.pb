
+type.googleapis.com/xds.type.v3.TypedStruct«
$type.googleapis.com/sse.FilterConfig‚

allow_credentials 
.
allowed_origins2
https://route.example

cache_control
no-store
J
exposed_headers725
x-sse-replay
x-sse-stream
x-sse-unavailable

max_age	forever

stream_log_levelinfo


tag_headerx-sse-stream